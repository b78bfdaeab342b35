"""The pods: hardened security contexts, the doctor init container, the topics hook Job, the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_render import (
    EXAMPLES,
    FULLNAME,
    Manifest,
    config_data,
    container,
    objects_of,
    one,
    render,
    variant_id,
    variants,
    worker_pod_spec,
)

pytestmark = pytest.mark.unit

KEDA_SASL = EXAMPLES / "keda-sasl.yaml"
CPU_ONLY = EXAMPLES / "cpu-only.yaml"
GPU = "nvidia.com/gpu"
WRITABLE_PATHS = {"/tmp", "/var/cache/rdqc"}


def _pods(manifests: list[Manifest]) -> list[Manifest]:
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] in ("Deployment", "Job")]


def _containers(pod: Manifest) -> list[Manifest]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_every_pod_is_hardened(helm: Path, variant: Path | None) -> None:
    for pod in _pods(render(helm, variant)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for item in _containers(pod):
            context = item["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            mounts = {m["mountPath"]: m["name"] for m in item["volumeMounts"]}
            # The root filesystem is read-only: what the image writes goes to emptyDirs.
            assert {mounts[path] for path in WRITABLE_PATHS} <= empty_dirs, item["name"]


def test_doctor_runs_before_the_worker_with_the_same_env_and_volumes(helm: Path) -> None:
    pod = worker_pod_spec(render(helm, KEDA_SASL))
    doctor, worker = container(pod, "doctor"), container(pod, "worker")
    assert [c["name"] for c in pod["initContainers"]] == ["doctor"]
    assert doctor["args"] == ["doctor", "--product-line", "caps", "--product-line", "bottles"]
    assert worker["args"] == ["worker"]
    for field in ("image", "envFrom", "volumeMounts", "securityContext", "resources"):
        assert doctor[field] == worker[field], field


def test_doctor_can_be_turned_off(helm: Path) -> None:
    pod = worker_pod_spec(render(helm, settings={"doctor.enabled": "false"}))
    assert "initContainers" not in pod


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_topics_job_runs_ensure_with_the_workers_settings(helm: Path, variant: Path | None) -> None:
    manifests = render(helm, variant)
    job = one(manifests, "Job", f"{FULLNAME}-topics")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert job["spec"]["backoffLimit"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (topics,) = pod["containers"]
    assert topics["args"] == ["topics", "ensure"]
    assert topics["image"] == container(worker_pod_spec(manifests), "worker")["image"]
    # Inline, because the ConfigMap does not exist yet at pre-install; the same settings.
    assert {env["name"]: env["value"] for env in topics["env"]} == config_data(manifests)
    assert GPU not in topics["resources"].get("limits", {})


def test_topics_job_can_be_turned_off(helm: Path) -> None:
    assert not objects_of(render(helm, settings={"topicsJob.enabled": "false"}), "Job")


def test_gpu_limit_and_toleration_by_default(helm: Path) -> None:
    pod = worker_pod_spec(render(helm, settings={"gpu.count": "2"}))
    assert container(pod, "worker")["resources"]["limits"][GPU] == 2
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_cpu_only_asks_for_no_gpu(helm: Path) -> None:
    manifests = render(helm, CPU_ONLY)
    assert GPU not in str(_pods(manifests))
    assert config_data(manifests)["RDQC_DEVICE"] == "cpu"


def test_workers_spread_over_nodes(helm: Path) -> None:
    manifests = render(helm)
    deployment = one(manifests, "Deployment", FULLNAME)
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_termination_grace_outlasts_the_drain(helm: Path) -> None:
    manifests = render(helm)
    pod = worker_pod_spec(manifests)
    drain = float(config_data(manifests)["RDQC_SHUTDOWN_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] > drain


def test_probes_hit_the_health_port(helm: Path) -> None:
    worker = container(worker_pod_spec(render(helm)), "worker")
    paths = {
        probe: worker[probe]["httpGet"]["path"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert paths == {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    assert {worker[probe]["httpGet"]["port"] for probe in paths} == {"health"}


def test_pdb_service_and_service_monitor_select_the_workers(helm: Path) -> None:
    manifests = render(helm, KEDA_SASL)
    pod_labels = one(manifests, "Deployment", FULLNAME)["spec"]["template"]["metadata"]["labels"]
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = one(manifests, "Service", f"{FULLNAME}-metrics")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = one(manifests, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_only_worker_pods_count_for_the_pdb_service_and_spread(helm: Path) -> None:
    manifests = render(helm)
    job_labels = one(manifests, "Job")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(manifests, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(manifests, "Service")["spec"]["selector"],
        one(manifests, "Deployment", FULLNAME)["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert not selector.items() <= job_labels.items()


def test_private_kafka_ca_is_mounted_where_the_setting_points(helm: Path) -> None:
    manifests = render(helm, KEDA_SASL)
    cafile = config_data(manifests)["RDQC_KAFKA__SSL_CAFILE"]
    pod = worker_pod_spec(manifests)
    mounts = {m["name"]: m["mountPath"] for m in container(pod, "worker")["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")
    assert volume["secret"]["secretName"] == "kafka-ca"
    assert cafile == f"{mounts['kafka-ca']}/ca.crt"
