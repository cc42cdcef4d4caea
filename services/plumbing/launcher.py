"""Starts the four services as local processes and, optionally, the demo.

    python -m services.plumbing.launcher            # services only, until Ctrl-C
    python -m services.plumbing.launcher --demo     # services, then the simulated IOP day
    python -m services.plumbing.launcher --demo --exit   # ... and stop afterwards

Each service logs (JSON) to .local/logs/<service>.log. The infrastructure
(Kafka, FerretDB, Zipkin) is started before this by deploy/local/infra.sh.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.plumbing.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    # start order: compliance first, the scheduler asks it before every booking
    "compliance": "iop.compliance.v1.ComplianceService",
    "engagement": "iop.engagement.v1.EngagementService",
    "crisis": "iop.crisis.v1.CrisisService",
    "scheduler": "iop.scheduler.v1.SchedulerService",
}
# Processes with no gRPC server to probe: (module, the module whose wait_ready(settings, proc,
# since) returns once the worker reads its topics).
# The demo plays an IOP day in minutes: a whole crisis escalation ladder in seconds, and sessions
# ended seconds after they started with the hours they stand for (the scheduler's attendance grace).
DEMO_ENV = {
    "CRISIS_POLICY_FILE": str(ROOT / "deploy" / "local" / "demo-ladder-policies.yaml"),
    "SCHEDULER_ATTENDANCE_GRACE_MIN": str(24 * 60),
}
WORKERS = {"engagement-worker": ("services.engagement.worker", "services.engagement.worker_status")}


def wait_serving(target: str, service: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited with {proc.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise TimeoutError(f"{service} did not become SERVING in {timeout_s}s")


def start_services(extra_env: dict[str, str] | None = None) -> dict[str, subprocess.Popen[bytes]]:
    settings = get_settings()
    logs = ROOT / ".local" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        # service-to-service deadline on the local store (FerretDB on SQLite is slow on first calls)
        "GRPC_CLIENT_DEADLINE_S": "5",
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
        **(extra_env or {}),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        _start_all(procs, env, logs, settings)
    except BaseException:
        stop_services(procs)
        raise
    return procs


def _start_all(procs: dict[str, subprocess.Popen[bytes]], env: dict[str, str], logs: Path, settings: Settings) -> None:
    for name, full_name in SERVICES.items():
        log = (logs / f"{name}.log").open("ab")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        target = f"127.0.0.1:{settings.grpc_port(name)}"
        wait_serving(target, full_name, procs[name])
        print(f"  {name:<11} SERVING on {target}   log: .local/logs/{name}.log", flush=True)
    for name, (module, status_module) in WORKERS.items():
        log = (logs / f"{name}.log").open("ab")
        started = datetime.now(UTC)
        procs[name] = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            importlib.import_module(status_module).wait_ready(settings, procs[name], started)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name}: {exc}; see .local/logs/{name}.log") from exc
        print(f"  {name:<11} ready (stream processor)   log: .local/logs/{name}.log", flush=True)


def stop_services(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in reversed(list(procs.values())):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            print(f"  {name} did not drain in 30 s; killing", flush=True)
            proc.kill()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="drive the simulated IOP day once the services are up")
    parser.add_argument("--exit", action="store_true", help="stop the services when the demo is done")
    args = parser.parse_args()
    settings = get_settings()
    print("Starting the four services ...", flush=True)
    procs = start_services(DEMO_ENV if args.demo else None)
    code = 0
    try:
        if args.demo:
            code = subprocess.call([sys.executable, "-m", "demo"], cwd=ROOT, env=os.environ.copy())
        if not args.exit:
            zipkin = settings.zipkin_endpoint.removesuffix("/api/v2/spans")
            print(f"\nThe platform is running. Traces: {zipkin}/zipkin/   Stop with Ctrl-C.", flush=True)
            signal.signal(signal.SIGTERM, _interrupt)
            while all(p.poll() is None for p in procs.values()):
                time.sleep(1)
            crashed = [name for name, p in procs.items() if p.poll() is not None]
            print(f"\nA service exited: {', '.join(crashed)} (see .local/logs/)", flush=True)
            code = 1
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping the services (draining) ...", flush=True)
        stop_services(procs)
    return code


if __name__ == "__main__":
    sys.exit(main())
