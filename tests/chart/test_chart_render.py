"""The chart lints strictly and every object it renders, in every variant, validates strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_render import (
    lint_command,
    render,
    render_error,
    run_helm,
    template_command,
    variant_id,
    variants,
)
from manifest_schemas import crd_validators, problems

pytestmark = pytest.mark.unit

# Kinds that appear in some variant; a variant that renders a kind outside this list is a
# template change the validation here has not seen.
EXPECTED_KINDS = {
    "ConfigMap",
    "Deployment",
    "Job",
    "PodDisruptionBudget",
    "PrometheusRule",
    "ScaledObject",
    "Secret",
    "Service",
    "ServiceMonitor",
    "TriggerAuthentication",
}


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_lint_strict(helm: Path, variant: Path | None) -> None:
    result = run_helm(helm, lint_command(variant))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_every_rendered_object_validates_strictly(
    helm: Path, crd_dir: Path, variant: Path | None
) -> None:
    crds = crd_validators(crd_dir)
    manifests = render(helm, variant)
    assert {m["kind"] for m in manifests} <= EXPECTED_KINDS
    found = [problem for manifest in manifests for problem in problems(manifest, crds)]
    assert not found, "\n".join(found)


def test_every_kind_is_rendered_by_some_variant(helm: Path) -> None:
    kinds = {m["kind"] for variant in variants() for m in render(helm, variant)}
    assert kinds == EXPECTED_KINDS


def test_strict_validation_catches_an_unknown_field(helm: Path, crd_dir: Path) -> None:
    """The validation is really strict: a misspelt field fails, built-in kind and CRD alike."""
    crds = crd_validators(crd_dir)
    manifests = render(helm, Path("helm/rdqc/examples/keda-sasl.yaml"))
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    scaled = next(m for m in manifests if m["kind"] == "ScaledObject")
    scaled["spec"]["maxReplicas"] = 3
    scaled["spec"]["cooldownPeriod"] = "soon"
    assert any("imagePullPolicyy" in problem for problem in problems(deployment, crds))
    scaled_problems = "\n".join(problems(scaled, crds))
    assert "maxReplicas" in scaled_problems
    assert "cooldownPeriod" in scaled_problems


def test_kubernetes_below_the_floor_is_refused(helm: Path) -> None:
    result = run_helm(helm, [*template_command(None), "--kube-version", "1.28.0"])
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr or "compatible" in result.stderr


def test_drain_grace_is_enforced(helm: Path) -> None:
    error = render_error(
        helm, settings={"shutdownGraceSeconds": "30", "terminationGracePeriodSeconds": "30"}
    )
    assert "terminationGracePeriodSeconds must exceed shutdownGraceSeconds" in error
