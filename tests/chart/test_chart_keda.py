"""Autoscaling: KEDA scales the worker Deployment on its group's lag on the inbound topic."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_render import (
    EXAMPLES,
    FULLNAME,
    config_data,
    example_values,
    objects_of,
    one,
    render,
    render_error,
)

pytestmark = pytest.mark.unit

KEDA_SASL = EXAMPLES / "keda-sasl.yaml"
CHART_SECRET = EXAMPLES / "chart-secret.yaml"
KEDA_VARIANTS = [KEDA_SASL, CHART_SECRET]


@pytest.mark.parametrize("variant", KEDA_VARIANTS, ids=lambda v: v.stem)
def test_scaled_object_targets_the_workers_group_and_topic(helm: Path, variant: Path) -> None:
    manifests = render(helm, variant)
    settings = config_data(manifests)
    scaled = one(manifests, "ScaledObject")["spec"]
    deployment = one(manifests, "Deployment", FULLNAME)
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == settings["RDQC_KAFKA__GROUP_ID"]
    assert trigger["metadata"]["topic"] == settings["RDQC_KAFKA__TOPIC"]
    assert trigger["metadata"]["bootstrapServers"] == settings["RDQC_KAFKA__BOOTSTRAP_SERVERS"]
    # The workers' own offset reset, so KEDA counts a new group's lag as they will consume it.
    assert trigger["metadata"]["offsetResetPolicy"] == "earliest"
    keda = example_values(variant)["autoscaling"]["keda"]
    assert scaled["minReplicaCount"] == keda["minReplicas"]
    assert scaled["maxReplicaCount"] == keda["maxReplicas"]
    assert trigger["metadata"]["lagThreshold"] == str(keda["lagThreshold"])
    assert scaled["maxReplicaCount"] <= int(settings["RDQC_TOPICS__PARTITIONS"])


@pytest.mark.parametrize("variant", KEDA_VARIANTS, ids=lambda v: v.stem)
def test_keda_owns_the_replica_count(helm: Path, variant: Path) -> None:
    assert "replicas" not in one(render(helm, variant), "Deployment", FULLNAME)["spec"]


def test_without_keda_the_deployment_runs_replica_count(helm: Path) -> None:
    manifests = render(helm, settings={"replicaCount": "3"})
    assert one(manifests, "Deployment", FULLNAME)["spec"]["replicas"] == 3
    assert not objects_of(manifests, "ScaledObject")
    assert not objects_of(manifests, "TriggerAuthentication")


def test_max_replicas_above_the_partition_count_fails(helm: Path) -> None:
    error = render_error(
        helm, KEDA_SASL, {"topics.partitions": "4", "autoscaling.keda.maxReplicas": "5"}
    )
    assert "autoscaling.keda.maxReplicas (5) must not exceed topics.partitions (4)" in error


def test_max_replicas_equal_to_the_partition_count_renders(helm: Path) -> None:
    manifests = render(
        helm, KEDA_SASL, {"topics.partitions": "4", "autoscaling.keda.maxReplicas": "4"}
    )
    assert one(manifests, "ScaledObject")["spec"]["maxReplicaCount"] == 4


def test_min_replicas_above_max_fails(helm: Path) -> None:
    error = render_error(
        helm, KEDA_SASL, {"autoscaling.keda.minReplicas": "5", "autoscaling.keda.maxReplicas": "4"}
    )
    assert "minReplicas (5) must not exceed autoscaling.keda.maxReplicas (4)" in error


def test_sasl_credentials_reach_keda_from_the_workers_secret(helm: Path) -> None:
    manifests = render(helm, KEDA_SASL)
    (trigger,) = one(manifests, "ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    auth = one(manifests, "TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("rdqc-secrets", "RDQC_KAFKA__SASL_USERNAME"),
        "password": ("rdqc-secrets", "RDQC_KAFKA__SASL_PASSWORD"),
        "ca": ("kafka-ca", "ca.crt"),
    }


def test_trigger_authentication_reads_the_chart_made_secret(helm: Path) -> None:
    manifests = render(helm, CHART_SECRET)
    (trigger,) = one(manifests, "ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha256"
    assert trigger["metadata"]["tls"] == "disable"
    secret = one(manifests, "Secret", f"{FULLNAME}-secrets")
    auth = one(manifests, "TriggerAuthentication")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_keda_without_sasl_or_private_ca_needs_no_authentication(helm: Path) -> None:
    manifests = render(helm, settings={"autoscaling.keda.enabled": "true"})
    (trigger,) = one(manifests, "ScaledObject")["spec"]["triggers"]
    assert "authenticationRef" not in trigger
    assert "sasl" not in trigger["metadata"]
    assert not objects_of(manifests, "TriggerAuthentication")
