"""The Kubernetes manifests in deploy/k8s, checked two ways.

1. Schema validity: deploy/k8s/validate.sh runs kubeconform -strict against JSON schemas built
   from the Kubernetes API's own OpenAPI spec. A deliberately broken manifest must fail it, so a
   green run means the validator really validated (not that it found nothing to check).
2. Agreement with the code (what no schema knows): every gRPC probe names the service's
   registered health name and port, every Deployment has a PodDisruptionBudget and an HPA
   whose maxReplicas the Kafka partition count bounds, every configured environment variable is
   one the code reads, and the collector keeps the PHI-redaction processors of
   deploy/otel-collector/config.yaml.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.engagement.config import EngagementConfig
from services.plumbing.bus import Topic
from services.plumbing.settings import Settings
from tests.support import ROOT, SERVICE_NAMES

K8S = ROOT / "deploy" / "k8s"
VALIDATE = K8S / "validate.sh"
NAMESPACE = "iop"
# Deployments that consume Kafka (their HPA is bounded by partitions) and the one that does not.
GRPC_SERVICES = tuple(SERVICE_NAMES)
STREAM_WORKERS = ("engagement-worker",)
COLLECTOR = "otel-collector"

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_docs() -> list[Doc]:
    docs: list[Doc] = []
    for path in manifest_files():
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


DOCS = load_docs()


def of_kind(kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in DOCS if d["kind"] == kind}


DEPLOYMENTS = of_kind("Deployment")
CONFIG = of_kind("ConfigMap")["iop-config"]["data"]
SECRET = of_kind("Secret")["iop-secrets"]["stringData"]


def container(name: str) -> Doc:
    containers = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    only: Doc = containers[0]
    return only


def pod_labels(name: str) -> dict[str, str]:
    labels: dict[str, str] = DEPLOYMENTS[name]["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def partitions() -> int:
    return int(CONFIG.get("KAFKA_TOPIC_PARTITIONS", Settings.model_fields["kafka_topic_partitions"].default))


def declared_topics() -> list[Topic]:
    topics: list[Topic] = []
    for path in sorted((ROOT / "services").glob("*/topics.py")):
        module = importlib.import_module(f"services.{path.parent.name}.topics")
        topics.extend(v for v in vars(module).values() if isinstance(v, Topic))
    return topics


# --- 1. schema validation --------------------------------------------------------------------------


def run_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("go") is None:
        pytest.skip("'go' is not installed: deploy/k8s/validate.sh installs kubeconform with `go install`")
    return subprocess.run(
        ["bash", str(VALIDATE), *map(str, paths)], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_the_manifests_are_valid_against_the_kubernetes_schemas() -> None:
    result = run_validate()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # every resource was checked (none skipped for want of a schema), the kustomization skipped
    assert f"{len(DOCS) + 1} resources found" in output, output
    assert f"Valid: {len(DOCS)}, Invalid: 0, Errors: 0, Skipped: 1" in output, output


GOOD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: good, namespace: iop}
spec:
  selector: {matchLabels: {app: good}}
  template:
    metadata: {labels: {app: good}}
    spec:
      containers:
        - name: good
          image: iop-platform:0.1.0
          resources: {requests: {cpu: 1, memory: 128Mi}}
          readinessProbe: {grpc: {port: 50051, service: iop.scheduler.v1.SchedulerService}}
"""

BROKEN = {
    # a wrong type: replicas is an integer
    "wrong-type.yaml": (GOOD.replace("spec:\n  selector", 'spec:\n  replicas: "two"\n  selector'), "/spec/replicas"),
    # an unknown (misspelt) field, which only strict validation catches
    "unknown-field.yaml": (GOOD.replace("readinessProbe:", "readinessProb:"), "'readinessProb' not allowed"),
    # a probe port of the wrong type, deep inside the pod template
    "probe-port.yaml": (GOOD.replace("port: 50051", "port: [50051]"), "readinessProbe/grpc/port"),
    # a kind with no schema is an error, not a silent skip
    "no-schema.yaml": (GOOD.replace("kind: Deployment", "kind: Deploymnet"), "could not find schema"),
}


def test_a_valid_manifest_outside_the_repository_passes(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    result = run_validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 1, Invalid: 0" in result.stdout


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_manifest_fails_validation(tmp_path: Path, name: str) -> None:
    text, expected = BROKEN[name]
    (tmp_path / name).write_text(text)
    result = run_validate(tmp_path / name)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert expected in output, output


# --- 2. agreement with the code ---------------------------------------------------------------------


def test_kustomization_applies_exactly_the_validated_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in manifest_files()}
    # nothing that would make the applied objects differ from the validated files but the image
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images"}
    assert [i["name"] for i in kustomization["images"]] == ["iop-platform"]


def test_every_object_lives_in_the_namespace() -> None:
    assert of_kind("Namespace")[NAMESPACE]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


def test_deployments_are_the_services_the_worker_and_the_collector() -> None:
    assert set(DEPLOYMENTS) == {*GRPC_SERVICES, *STREAM_WORKERS, COLLECTOR}


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_probes_name_the_service_and_its_port(name: str) -> None:
    full_name = SERVICE_NAMES[name]
    port = Settings.model_fields[f"{name}_grpc_port"].default
    assert f'SERVICE = "{full_name}"' in (ROOT / "services" / name / "api.py").read_text()
    c = container(name)
    assert c["command"] == ["python", "-m", f"services.{name}"]
    assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in c["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": port, "service": full_name}, probe
    service = of_kind("Service")[name]
    assert {"name": "grpc", "port": port, "targetPort": "grpc"}.items() <= service["spec"]["ports"][0].items()
    assert selects(service["spec"]["selector"], pod_labels(name))


def test_the_stream_worker_runs_the_faust_worker() -> None:
    c = container("engagement-worker")
    assert c["command"] == ["python", "-m", "services.engagement.worker"]
    assert (ROOT / "services" / "engagement" / "worker.py").is_file()
    assert "ports" not in c  # nothing to probe or route to: faust's web server is off


def test_engagement_serves_http_on_all_interfaces() -> None:
    c = container("engagement")
    env = {e["name"]: e["value"] for e in c["env"]}
    port = int(env["ENGAGEMENT_HTTP_PORT"])
    assert port == EngagementConfig.model_fields["http_port"].default
    assert env["ENGAGEMENT_HTTP_HOST"] == "0.0.0.0"
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in c["ports"]
    assert {"name": "http", "port": port, "targetPort": "http"}.items() <= of_kind("Service")["engagement"]["spec"][
        "ports"
    ][1].items()


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_pods_are_non_root_read_only_bounded_and_spread(name: str) -> None:
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    c = container(name)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][bound]), bound
    keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for t in pod["topologySpreadConstraints"]:
        assert selects(t["labelSelector"]["matchLabels"], pod_labels(name))
    if name != COLLECTOR:  # the services' image: /tmp is the one writable path (faust's datadir too)
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_every_deployment_has_a_pdb_and_an_hpa(name: str) -> None:
    labels = pod_labels(name)
    pdbs = [p for p in of_kind("PodDisruptionBudget").values() if selects(p["spec"]["selector"]["matchLabels"], labels)]
    assert len(pdbs) == 1, f"{name}: {len(pdbs)} PodDisruptionBudgets"
    assert pdbs[0]["spec"]["maxUnavailable"] == 1
    hpas = [h for h in DOCS if h["kind"] == "HorizontalPodAutoscaler" and h["spec"]["scaleTargetRef"]["name"] == name]
    assert len(hpas) == 1, f"{name}: {len(hpas)} HorizontalPodAutoscalers"
    hpa = hpas[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    # at least two pods, so the PDB never blocks a drain and one always serves
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in DEPLOYMENTS[name]["spec"], "the HPA owns the replica count"


@pytest.mark.parametrize("name", [*GRPC_SERVICES, *STREAM_WORKERS])
def test_hpa_max_replicas_is_bounded_by_the_partition_count(name: str) -> None:
    """A consumer group uses at most one consumer per partition; pods beyond that consume nothing."""
    hpa = of_kind("HorizontalPodAutoscaler")[name]
    topics = declared_topics()
    assert topics, "no topics declared in services/*/topics.py"
    fewest = min(t.partitions or partitions() for t in topics)
    assert hpa["spec"]["maxReplicas"] <= fewest


def _known_variables() -> tuple[set[str], str]:
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    sources = "\n".join(p.read_text() for p in (ROOT / "services").rglob("*.py"))
    return aliases, sources


def test_every_configured_variable_is_read_by_the_code() -> None:
    aliases, sources = _known_variables()
    configured = {*CONFIG, *SECRET}
    for name in DEPLOYMENTS:
        configured |= {e["name"] for e in container(name).get("env", []) if name != COLLECTOR}
    for key in sorted(configured):
        assert key in aliases or f'"{key}"' in sources, f"{key} is read by nothing"


def test_the_config_points_at_real_clusters_and_the_services() -> None:
    assert CONFIG["DEPLOYMENT_ENVIRONMENT"] == "production"
    assert CONFIG["GRPC_HOST"] == "0.0.0.0"
    for local in ("localhost", "127.0.0.1"):
        assert local not in CONFIG["KAFKA_BOOTSTRAP_SERVERS"]
        assert local not in CONFIG["MONGODB_URI"]
    assert len(CONFIG["KAFKA_BOOTSTRAP_SERVERS"].split(",")) >= 3
    assert int(CONFIG["KAFKA_REPLICATION_FACTOR"]) >= 3
    assert "replicaSet=" in CONFIG["MONGODB_URI"] and "w=majority" in CONFIG["MONGODB_URI"]
    services = of_kind("Service")
    for name in GRPC_SERVICES:
        host, port = CONFIG[f"{name.upper()}_TARGET"].rsplit(":", 1)
        assert host == f"{name}.{NAMESPACE}.svc.cluster.local"
        assert int(port) == Settings.model_fields[f"{name}_grpc_port"].default
        assert int(port) in {p["port"] for p in services[name]["spec"]["ports"]}
    assert CONFIG["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{COLLECTOR}.{NAMESPACE}.svc.cluster.local:4317"
    assert 4317 in {p["port"] for p in services[COLLECTOR]["spec"]["ports"]}


@pytest.mark.parametrize("name", [*GRPC_SERVICES, *STREAM_WORKERS])
def test_services_take_config_then_secret(name: str) -> None:
    # the Secret comes last, so a MONGODB_URI with credentials there overrides the ConfigMap's
    assert container(name)["envFrom"] == [
        {"configMapRef": {"name": "iop-config"}},
        {"secretRef": {"name": "iop-secrets"}},
    ]


def test_the_placeholder_secrets_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployed as shipped, the services refuse to start until the secrets are replaced."""
    for key, value in {**CONFIG, **SECRET}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError, match="IOP_JWT_SECRET"):
        Settings().check_production_safety()
    with pytest.raises(RuntimeError, match="ENGAGEMENT_WEBHOOK_SECRET"):
        EngagementConfig().check_production_safety(CONFIG["DEPLOYMENT_ENVIRONMENT"])


def test_the_collector_keeps_the_phi_redaction_of_the_compose_collector() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "otel-collector" / "config.yaml").read_text())
    k8s = yaml.safe_load(of_kind("ConfigMap")["otel-collector-config"]["data"]["config.yaml"])
    assert k8s["processors"] == compose["processors"]
    pipeline = k8s["service"]["pipelines"]["traces"]
    assert pipeline["processors"] == compose["service"]["pipelines"]["traces"]["processors"]
    assert k8s["receivers"] == compose["receivers"]
    ports = {p["containerPort"] for p in container(COLLECTOR)["ports"]}
    assert {4317, 4318, 13133} <= ports
    mount = container(COLLECTOR)["volumeMounts"][0]["mountPath"]
    assert container(COLLECTOR)["args"] == [f"--config={mount}/config.yaml"]


def test_the_docs_explain_deploying_replacing_parallelism_and_validation() -> None:
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    assert "## Parallelism: partitions and consumer groups" in docs
    assert "deploy/k8s/validate.sh" in docs
    for must_replace in ("IOP_JWT_SECRET", "ENGAGEMENT_WEBHOOK_SECRET", "KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI"):
        assert must_replace in docs
    assert "KAFKA_TOPIC_PARTITIONS" in docs and "maxReplicas" in docs
