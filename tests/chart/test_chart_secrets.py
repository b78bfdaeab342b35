"""Credentials come from a Secret only: referenced by the pods, never inlined elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chart_render import (
    EXAMPLES,
    FULLNAME,
    Manifest,
    config_data,
    container,
    example_values,
    one,
    render,
    render_error,
    variant_id,
    variants,
    worker_pod_spec,
)

pytestmark = pytest.mark.unit

CHART_SECRET = EXAMPLES / "chart-secret.yaml"
CREDENTIAL_ENV = {
    "RDQC_REDIS__URL",
    "RDQC_S3__ACCESS_KEY",
    "RDQC_S3__SECRET_KEY",
    "RDQC_KAFKA__SASL_USERNAME",
    "RDQC_KAFKA__SASL_PASSWORD",
}


def _pod_specs(manifests: list[Manifest]) -> list[Manifest]:
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] in ("Deployment", "Job")]


def _secret_refs(container_spec: Manifest) -> list[str]:
    return [
        ref["secretRef"]["name"] for ref in container_spec.get("envFrom", []) if "secretRef" in ref
    ]


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_no_credential_in_the_config_map_or_inline_env(helm: Path, variant: Path | None) -> None:
    manifests = render(helm, variant)
    assert not CREDENTIAL_ENV & set(config_data(manifests))
    for pod in _pod_specs(manifests):
        for item in [*pod.get("initContainers", []), *pod["containers"]]:
            inline = {env["name"] for env in item.get("env", []) if "value" in env}
            assert not CREDENTIAL_ENV & inline, item["name"]


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_worker_and_doctor_read_the_secret(helm: Path, variant: Path | None) -> None:
    manifests = render(helm, variant)
    values = example_values(variant) if variant else {}
    expected = values.get("existingSecret", "rdqc-secrets") or f"{FULLNAME}-secrets"
    pod = worker_pod_spec(manifests)
    assert _secret_refs(container(pod, "worker")) == [expected]
    assert _secret_refs(container(pod, "doctor")) == [expected]


def test_example_secret_values_appear_only_in_secrets(helm: Path) -> None:
    """Every credential of the example, SASL password included, is in a Secret and nowhere else."""
    secret_values = example_values(CHART_SECRET)["secrets"].values()
    manifests = render(helm, CHART_SECRET)
    secrets = [m for m in manifests if m["kind"] == "Secret"]
    others = json.dumps([m for m in manifests if m["kind"] != "Secret"])
    in_secrets = json.dumps(secrets)
    for value in secret_values:
        assert value in in_secrets
        assert value not in others


def test_chart_made_secret_holds_each_credential_under_its_env_name(helm: Path) -> None:
    manifests = render(helm, CHART_SECRET)
    values = example_values(CHART_SECRET)["secrets"]
    data = one(manifests, "Secret", f"{FULLNAME}-secrets")["stringData"]
    assert data == {
        "RDQC_REDIS__URL": values["redisUrl"],
        "RDQC_S3__ACCESS_KEY": values["s3AccessKey"],
        "RDQC_S3__SECRET_KEY": values["s3SecretKey"],
        "RDQC_KAFKA__SASL_USERNAME": values["kafkaSaslUsername"],
        "RDQC_KAFKA__SASL_PASSWORD": values["kafkaSaslPassword"],
    }


def test_existing_secret_means_no_chart_made_secret(helm: Path) -> None:
    manifests = render(helm)
    assert [m for m in manifests if m["kind"] == "Secret"] == []


def test_pods_roll_when_a_credential_changes(helm: Path) -> None:
    def checksum(password: str) -> str:
        manifests = render(helm, CHART_SECRET, {"secrets.kafkaSaslPassword": password})
        annotations = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/secret"])

    assert checksum("first-password") != checksum("second-password")


def test_pods_roll_when_a_setting_changes(helm: Path) -> None:
    def checksum(topic: str) -> str:
        manifests = render(helm, settings={"kafka.topic": topic})
        annotations = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum("frames.a") != checksum("frames.b")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"existingSecret": ""}, "secrets.redisUrl is required"),
        (
            {
                "existingSecret": "",
                "secrets.redisUrl": "redis://r:6379/0",
                "kafka.sasl.enabled": "true",
            },
            "secrets.kafkaSaslUsername and secrets.kafkaSaslPassword are required",
        ),
    ],
)
def test_chart_made_secret_needs_its_credentials(
    helm: Path, settings: dict[str, str], message: str
) -> None:
    assert message in render_error(helm, settings=settings)


def test_topics_job_gets_kafka_credentials_from_a_hook_secret_made_before_it(helm: Path) -> None:
    """At pre-install the release's Secret does not exist yet: the Job has its own, earlier hook."""
    manifests = render(helm, CHART_SECRET)
    job = one(manifests, "Job")
    (name,) = _secret_refs(job["spec"]["template"]["spec"]["containers"][0])
    hook_secret = one(manifests, "Secret", name)
    assert set(hook_secret["stringData"]) == {
        "RDQC_KAFKA__SASL_USERNAME",
        "RDQC_KAFKA__SASL_PASSWORD",
    }
    secret_hook = hook_secret["metadata"]["annotations"]
    job_hook = job["metadata"]["annotations"]
    assert secret_hook["helm.sh/hook"] == job_hook["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret_hook["helm.sh/hook-weight"]) < int(job_hook["helm.sh/hook-weight"])
    assert "hook-succeeded" in secret_hook["helm.sh/hook-delete-policy"]


def test_topics_job_without_credentials_reads_no_secret(helm: Path) -> None:
    manifests = render(
        helm, settings={"existingSecret": "", "secrets.redisUrl": "redis://r:6379/0"}
    )
    job = one(manifests, "Job")
    assert "envFrom" not in job["spec"]["template"]["spec"]["containers"][0]
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"] == [
        f"{FULLNAME}-secrets"
    ]


def test_credentials_with_yaml_syntax_reach_the_secret_intact(helm: Path) -> None:
    password = "p: w #\"x' {y}"
    manifests = render(helm, CHART_SECRET, {"secrets.kafkaSaslPassword": password})
    for name in (f"{FULLNAME}-secrets", f"{FULLNAME}-topics-kafka"):
        assert one(manifests, "Secret", name)["stringData"]["RDQC_KAFKA__SASL_PASSWORD"] == password
