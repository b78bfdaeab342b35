"""The pinned helm on the chart: the lint and template commands, and the objects they render.

The commands are built here only, and docs/deploy.md shows the same ones (test_deploy_doc.py
holds the two together): `helm lint --strict helm/rdqc [-f EXAMPLE]` and
`helm template line1 helm/rdqc --namespace rdqc [-f EXAMPLE]`.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = Path("helm/rdqc")
EXAMPLES = CHART / "examples"
RELEASE = "line1"
NAMESPACE = "rdqc"
FULLNAME = f"{RELEASE}-rdqc"
HELM_TIMEOUT_S = 60

Manifest = dict[str, Any]


def example_files() -> list[Path]:
    """The example values files, relative to the repository root."""
    return sorted(path.relative_to(REPO_ROOT) for path in (REPO_ROOT / EXAMPLES).glob("*.yaml"))


def variants() -> list[Path | None]:
    """The default values (None), then each example."""
    return [None, *example_files()]


def variant_id(variant: Path | None) -> str:
    return variant.stem if variant else "default"


def _values_args(variant: Path | None) -> list[str]:
    return ["-f", str(variant)] if variant else []


def lint_command(variant: Path | None) -> list[str]:
    return ["helm", "lint", "--strict", str(CHART), *_values_args(variant)]


def template_command(variant: Path | None) -> list[str]:
    return [
        "helm",
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        *_values_args(variant),
    ]


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


def run_helm(helm: Path, command: Sequence[str]) -> HelmResult:
    """Run a `helm ...` command line with the pinned binary, from the repository root."""
    if command[0] != "helm":
        raise ValueError(f"not a helm command: {command}")
    done = subprocess.run(
        [str(helm), *command[1:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        check=False,
    )
    return HelmResult(done.returncode, done.stdout, done.stderr)


def set_args(settings: Mapping[str, str]) -> list[str]:
    """`--set` arguments; values are given as helm parses them (`--set a=1` is a number)."""
    return [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]


@cache
def _rendered(helm: Path, command: tuple[str, ...]) -> tuple[Manifest, ...]:
    result = run_helm(helm, command)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(
    helm: Path, variant: Path | None = None, settings: Mapping[str, str] | None = None
) -> list[Manifest]:
    """The objects `helm template` renders for a variant, with optional `--set` overrides."""
    command = (*template_command(variant), *set_args(settings or {}))
    # A deep copy per call, so a test may change what it gets without touching the cache.
    return copy.deepcopy(list(_rendered(helm, command)))


def render_error(
    helm: Path, variant: Path | None = None, settings: Mapping[str, str] | None = None
) -> str:
    """The error `helm template` stops with; fails the test if it renders."""
    result = run_helm(helm, [*template_command(variant), *set_args(settings or {})])
    if result.returncode == 0:
        raise AssertionError(f"rendered, but should have failed with {settings}")
    return result.stderr


def objects_of(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Sequence[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The only object of a kind (and name); fails the test when there are none or several."""
    found = [m for m in objects_of(manifests, kind) if name in (None, m["metadata"]["name"])]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def worker_pod_spec(manifests: Sequence[Manifest]) -> Manifest:
    spec: Manifest = one(manifests, "Deployment", FULLNAME)["spec"]["template"]["spec"]
    return spec


def container(pod_spec: Manifest, name: str) -> Manifest:
    for item in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no container {name!r} in the pod spec")


def config_data(manifests: Sequence[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(manifests, "ConfigMap", FULLNAME)["data"]
    return data


def example_values(variant: Path) -> Manifest:
    values: Manifest = yaml.safe_load((REPO_ROOT / variant).read_text())
    return values
