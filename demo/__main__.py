"""A simulated IOP day on the running platform (started by `make run` / `make demo`).

Seeds programs, clinicians licensed in several states, clients with consents, payer
plans and authorizations; runs group and individual sessions with video-platform
webhooks and PHQ-9/GAD-7 questionnaires; and drives the five scenarios of the
product, each as one user story and one trace. Ends with a summary: what happened
in each scenario, the events a partner EHR received (read by the reference partner
consumer), and the trace ids with the URL to see them.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from demo.day import Day
from demo.platform import Platform, ScenarioResult, uid
from demo.scenarios import audio_only, burnout, client_travels, disconnection_during_crisis, privacy_compromised
from iop.engagement.v1 import engagement_pb2 as epb
from services.plumbing.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def say(line: str) -> None:
    print(f"      · {line}", flush=True)


def questionnaires(p: Platform, day: Day) -> list[str]:
    """Morning check-in: PHQ-9 and GAD-7 for a few clients, validated item by item."""
    outcomes = []
    for phq9 in ([1, 1, 2, 1, 0, 1, 1, 0, 0], [2, 2, 2, 1, 1, 2, 1, 1, 0], [0, 1, 0, 1, 0, 0, 1, 0, 0]):
        client = day.client("NY", "demo-commercial-ppo", "America/New_York")
        record = day.outcome(client, epb.INSTRUMENT_PHQ9, phq9)
        day.outcome(client, epb.INSTRUMENT_GAD7, [1, 1, 1, 0, 1, 0, 1])
        outcomes.append(f"PHQ-9 total {record.total_score}")
    return outcomes


def partner_view(since: datetime) -> dict[str, int]:
    """What a partner EHR received: the reference consumer replays the partner topics from
    the start of the demo into its own mirror."""
    mirror_path = ROOT / ".local" / "demo" / f"partner-{uid('mirror')}.sqlite"
    mirror_path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "partner.consumer",
            "--topics",
            "all",
            "--group",
            uid("demo-partner"),
            "--mirror",
            str(mirror_path),
            "--replay-from",
            since.isoformat(),
            "--exit-when-idle",
            "5",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=180,
    )
    with sqlite3.connect(mirror_path) as mirror:
        rows = mirror.execute("SELECT topic, ce_type, COUNT(*) FROM events GROUP BY topic, ce_type").fetchall()
        rejected = mirror.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
    counts = {f"{topic}  {ce_type.rsplit('.', 1)[-1]}": n for topic, ce_type, n in rows}
    counts["(rejected envelopes)"] = rejected
    return counts


Scenario = Callable[[Platform, Day, Callable[[str], None], ScenarioResult], None]


def main() -> int:
    settings = get_settings()
    started = datetime.now(UTC)
    platform = Platform(settings)
    day = Day(platform)
    scenarios: list[tuple[str, Scenario]] = [
        ("Disconnection during crisis", disconnection_during_crisis),
        ("Privacy-compromised session", privacy_compromised),
        ("Burnout from a full virtual day", burnout),
        ("Client travels to another state", client_travels),
        ("Audio-only fallback", audio_only),
    ]
    print("\nA simulated virtual-IOP day\n", flush=True)
    print("  [0/5] Morning questionnaires", flush=True)
    for line in questionnaires(platform, day):
        say(line)
    results = []
    for number, (title, run) in enumerate(scenarios, start=1):
        result = ScenarioResult(number, title)
        print(f"  [{number}/5] {title}", flush=True)
        t0 = time.monotonic()
        try:
            with platform.scenario(result):
                run(platform, day, say, result)
        except Exception as exc:  # keep going: the summary says what failed
            result.ok = False
            result.outcomes.append(f"failed: {type(exc).__name__}: {str(exc)[:160]}")
            traceback.print_exc(limit=3)
        say(f"{'done' if result.ok else 'FAILED'} in {time.monotonic() - t0:.1f} s")
        results.append(result)
    platform.close()
    print("  Reading what partner EHRs received ...", flush=True)
    time.sleep(2)
    received = partner_view(started)

    zipkin = settings.zipkin_endpoint.removesuffix("/api/v2/spans")
    print("\n" + "=" * 78)
    print(f"Summary: {day.clinicians} clinicians, {day.clients} clients, {day.sessions} sessions booked")
    for r in results:
        print(f"\n{r.number}. {r.title}: {'OK' if r.ok else 'FAILED'}")
        for line in r.outcomes:
            print(f"   - {line}")
        print(f"   trace {r.trace_id}: {zipkin}/zipkin/traces/{r.trace_id}")
    print("\nEvents received by the reference partner consumer (topic, event type: unique events):")
    for topic, count in sorted(received.items()):
        print(f"   {topic:<66} {count}")
    print(f"\nAll traces: {zipkin}/zipkin/  (service demo-driver is the root of each scenario)")
    print("=" * 78, flush=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
