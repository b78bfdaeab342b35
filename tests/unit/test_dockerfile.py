"""The worker image recipe, checked statically: no container engine runs here, CI builds the image.

The Dockerfile is read with dockerfile-parse; .dockerignore is matched the way Docker matches it
(the last matching pattern wins, and a pattern that matches a parent directory covers its files).
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = "deploy/image/install-venv.sh"
VENV = "/opt/rdqc/venv"
BUILD_ARGS = {
    "VERSION": "9.8.7",
    "REVISION": "0123456789abcdef",
    "CREATED": "2026-01-02T03:04:05Z",
    "SOURCE": "https://git.example.com/rdqc",
}
# Secrets, generated credentials, history and caches: none of them may reach an image layer.
FORBIDDEN_SOURCE = re.compile(
    r"(^|/)(\.git|\.venv|\.stack|demo-output|__pycache__|\.cache|\.[\w-]*_cache)(/|$)"
    r"|(^|/)\.env|\.env$|\.(pem|key)$|(^|/)id_(rsa|ed25519)"
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL|SASL", re.IGNORECASE)
BUILD_TOOL = re.compile(
    r"\b(apt-get|apt|apk|yum|dnf|microdnf|conda|gcc|g\+\+|cc|clang|make|cmake|"
    r"build-essential|pip3?\s+install|install-venv\.sh)\b"
)


@dataclass
class Stage:
    name: str | None
    image: str
    instructions: list[dict[str, Any]] = field(default_factory=list)
    # ENV, ARG and LABEL as they stand after each instruction, substituted.
    contexts: list[Any] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    @property
    def envs(self) -> dict[str, str]:
        return dict(self.contexts[-1].envs)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.contexts[-1].labels)


def stages(build_args: dict[str, str] | None = None) -> list[Stage]:
    parser = DockerfileParser(str(REPO / "Dockerfile"), build_args=build_args or {})
    images = iter(parser.parent_images)
    found: list[Stage] = []
    for instruction, context in zip(parser.structure, parser.context_structure, strict=True):
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else None
            found.append(Stage(name, next(images)))
        elif found:
            found[-1].instructions.append(instruction)
        if found:
            found[-1].contexts.append(context)
    return found


def copy_sources(value: str) -> tuple[list[str], list[str]]:
    """The flags and the sources of a COPY (its last word is the destination)."""
    words = shlex.split(value)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]


def exec_form(value: str) -> list[str] | None:
    """The argument list of an exec-form ENTRYPOINT or CMD; None for the shell form."""
    try:
        words = json.loads(value)
    except json.JSONDecodeError:
        return None
    return words if isinstance(words, list) else None


def script_arguments(command: str) -> list[str]:
    """What a shell line passes to the install script."""
    words = shlex.split(command)
    scripts = [i for i, word in enumerate(words) if word.endswith(INSTALL_SCRIPT)]
    assert len(scripts) == 1, f"expected one call of {INSTALL_SCRIPT} in {command!r}"
    return words[scripts[0] + 1 :]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# .dockerignore, as Docker reads it.


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    regex, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            regex, i = regex + "(.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
            continue
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end
        elif char == "\\" and i + 1 < len(pattern):
            regex, i = regex + re.escape(pattern[i + 1]), i + 1
        else:
            regex += re.escape(char)
        i += 1
    return re.compile(f"^{regex}$")


@functools.cache
def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per pattern, in file order."""
    patterns = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negated = text.startswith("!")
        cleaned = posixpath.normpath(text.removeprefix("!").strip()).lstrip("/")
        patterns.append((negated, _pattern_regex(cleaned)))
    return patterns


def is_sent(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    sent = True
    for negated, regex in dockerignore():
        if any(regex.match(candidate) for candidate in candidates):
            sent = negated
    return sent


# The base images.


def test_every_base_image_is_pinned_by_a_full_version_tag() -> None:
    for stage in stages():
        name, _, tag = stage.image.split("@")[0].rpartition(":")
        assert name and "/" not in tag, f"FROM {stage.image}: no tag; pin one like 3.11.14-slim"
        assert tag != "latest", f"FROM {stage.image}: 'latest' moves; pin a version tag"
        assert re.match(r"\d+\.\d+\.\d+", tag), (
            f"FROM {stage.image}: the tag names no full version (major.minor.patch)"
        )


def test_both_stages_share_one_base_so_the_copied_venv_finds_its_interpreter() -> None:
    images = {stage.image for stage in stages()}
    assert len(stages()) >= 2, "the Dockerfile should be multi-stage (builder, runtime)"
    assert len(images) == 1, f"the stages use different bases: {sorted(images)}"


# The runtime contract with the chart.


def test_final_stage_runs_as_the_charts_numeric_non_root_user() -> None:
    users = stages()[-1].values("USER")
    assert users, "the final stage sets no USER, so the worker would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: the kubelet checks runAsNonRoot only on a numeric id"
    assert int(uid) != 0, "USER 0 is root"
    values = (REPO / "helm/rdqc/values.yaml").read_text()
    chart_uid = re.search(r"runAsUser:\s*(\d+)", values)
    assert chart_uid, "helm/rdqc/values.yaml sets no podSecurityContext.runAsUser"
    assert uid == chart_uid.group(1), f"USER {uid} but the chart runs as {chart_uid.group(1)}"


def test_entrypoint_is_the_rdqc_console_script_in_exec_form() -> None:
    final = stages()[-1]
    entrypoints, commands = final.values("ENTRYPOINT"), final.values("CMD")
    assert entrypoints, "the final stage has no ENTRYPOINT"
    assert exec_form(entrypoints[-1]) == ["rdqc"], (
        f'ENTRYPOINT {entrypoints[-1]}: use the exec form ["rdqc"], so the worker is PID 1 and '
        "gets SIGTERM to drain"
    )
    assert commands and exec_form(commands[-1]) == ["worker"], 'CMD should be ["worker"]'
    scripts = pyproject()["project"].get("scripts", {})
    assert scripts.get("rdqc") == "worker.cli:main", (
        "pyproject.toml [project.scripts] must install `rdqc` = worker.cli:main for the entrypoint"
    )
    from worker import cli

    assert callable(cli.main), "worker.cli has no main for the `rdqc` console script"


def test_everything_written_at_run_time_lands_on_the_charts_writable_volumes() -> None:
    templates = "".join(p.read_text() for p in sorted((REPO / "helm/rdqc/templates").iterdir()))
    writable = re.findall(r"mountPath:\s*(/[^\s{]+)", templates)
    assert writable, "the chart's pods mount no volumes"
    final = stages()[-1]
    paths = {
        name: final.envs.get(name, "")
        for name in ("HOME", "XDG_CACHE_HOME", "TORCH_HOME", "MPLCONFIGDIR")
    }
    paths["RDQC_MODELS__CACHE_DIR"] = final.envs.get("RDQC_MODELS__CACHE_DIR", "")
    paths["WORKDIR"] = final.values("WORKDIR")[-1] if final.values("WORKDIR") else ""
    for name, path in paths.items():
        assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in writable), (
            f"{name}={path!r} is not under a volume the chart mounts ({writable}); "
            "the root filesystem is read-only"
        )
    assert final.envs.get("PYTHONUNBUFFERED") == "1", "set PYTHONUNBUFFERED=1: logs must not lag"


def test_exposes_the_workers_metrics_and_health_ports() -> None:
    from worker.settings import Settings

    defaults = {Settings.model_fields[f].default for f in ("metrics_port", "health_port")}
    exposed = {int(port.split("/")[0]) for v in stages()[-1].values("EXPOSE") for port in v.split()}
    assert exposed == defaults, f"EXPOSE {sorted(exposed)}, the worker listens on {defaults}"


def test_oci_labels_take_the_build_args() -> None:
    labels = stages(BUILD_ARGS)[-1].labels
    oci = "org.opencontainers.image."
    assert labels.get(oci + "title"), f"no {oci}title label"
    assert labels.get(oci + "licenses") == pyproject()["project"]["license"], (
        f"{oci}licenses should be pyproject's license"
    )
    for label, arg in (("version", "VERSION"), ("revision", "REVISION"), ("created", "CREATED")):
        assert labels.get(oci + label) == BUILD_ARGS[arg], (
            f"{oci}{label} should come from --build-arg {arg}"
        )
    assert labels.get(oci + "source") == BUILD_ARGS["SOURCE"], f"{oci}source: --build-arg SOURCE"


# What enters the image.


def test_nothing_secret_or_cached_is_copied() -> None:
    for stage in stages():
        assert not stage.values("ADD"), "use COPY: ADD fetches URLs and unpacks archives"
        for value in stage.values("COPY"):
            _, sources = copy_sources(value)
            for source in sources:
                assert source not in {".", "./"} and not set(source) & set("*?["), (
                    f"COPY {value}: copy named paths, so what enters the image is visible here"
                )
                assert not FORBIDDEN_SOURCE.search(source), (
                    f"COPY {value}: {source} is a secret, env file, history or cache"
                )
        for instruction in ("ARG", "ENV"):
            for value in stage.values(instruction):
                assert not SECRET_NAME.search(value.split("=")[0]), (
                    f"{instruction} {value}: build args and env stay in the image's history; "
                    "credentials come from the chart's Secret at run time"
                )


def test_final_stage_copies_only_the_venv_and_installs_no_build_tools() -> None:
    builder, final = stages()[0], stages()[-1]
    for value in final.values("COPY"):
        flags, sources = copy_sources(value)
        assert f"--from={builder.name}" in flags, (
            f"COPY {value}: the final stage takes the venv only"
        )
        assert sources == [VENV], f"COPY {value}: copy the venv only"
    for command in final.values("RUN"):
        tool = BUILD_TOOL.search(command)
        assert not tool, (
            f"RUN {command}: the final stage installs nothing ({tool.group(0) if tool else ''}); "
            "install in the builder and copy the venv"
        )
    assert final.envs.get("PATH", "").split(":")[0] == f"{VENV}/bin", (
        "the venv's bin should lead PATH, so `rdqc` is the installed console script"
    )


def test_pip_runs_without_a_cache() -> None:
    for stage in stages():
        for instruction, context in zip(stage.instructions, stage.contexts[1:], strict=True):
            command = instruction["value"]
            if instruction["instruction"] != "RUN" or not re.search(r"pip|install-venv", command):
                continue
            assert context.envs.get("PIP_NO_CACHE_DIR") == "1" or "--no-cache-dir" in command, (
                f"RUN {command}: set PIP_NO_CACHE_DIR=1, or the wheels stay in a layer"
            )


def test_every_copy_source_is_in_the_repo_and_in_the_build_context() -> None:
    for stage in stages():
        for value in stage.values("COPY"):
            flags, sources = copy_sources(value)
            if any(flag.startswith("--from=") for flag in flags):
                continue
            for source in sources:
                path = REPO / source
                assert path.exists(), f"COPY {value}: {source} is not in the repository"
                files = [path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("py.typed")]
                for file in files:
                    relative = file.relative_to(REPO).as_posix()
                    assert is_sent(relative), f"COPY {value}: .dockerignore leaves out {relative}"


def test_the_build_sends_only_what_the_install_reads() -> None:
    for kept_out in (
        ".git/config",
        ".venv/bin/python",
        ".stack/stack.env",
        ".stack/minio/data/x",
        "demo-output/table.txt",
        "tests/unit/test_x.py",
        "docs/contracts.md",
        "prod.env",
        "worker/local.env",
        "worker/__pycache__/settings.cpython-311.pyc",
        ".mypy_cache/x",
        "rdqc.egg-info/PKG-INFO",
    ):
        assert not is_sent(kept_out), f".dockerignore sends {kept_out}"
    needed = {
        posixpath.normpath(source)
        for stage in stages()
        for flags, sources in map(copy_sources, stage.values("COPY"))
        if not any(flag.startswith("--from=") for flag in flags)
        for source in sources
    }
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in {".git", ".venv", ".stack"}]
        for name in files:
            relative = (Path(root) / name).relative_to(REPO).as_posix()
            if is_sent(relative):
                assert any(relative == n or relative.startswith(n + "/") for n in needed), (
                    f".dockerignore sends {relative}, which the build does not read"
                )


# The install steps: one script, run by `make setup` and by the image build.


def _recorded_install(tmp_path: Path, arguments: list[str]) -> list[str]:
    """Runs the install script against a venv whose pip only records what it was asked."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    log = tmp_path / "pip.log"
    log.unlink(missing_ok=True)
    for tool in ("python", "pip"):
        fake = venv / "bin" / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> {shlex.quote(str(log))}\n')
        fake.chmod(0o755)
    subprocess.run(["bash", str(REPO / INSTALL_SCRIPT), str(venv), *arguments], check=True)
    return log.read_text().splitlines()


def test_the_image_installs_with_the_same_commands_as_make_setup(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "setup"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    make_calls = [line for line in dry_run if INSTALL_SCRIPT in line]
    assert len(make_calls) == 1, f"`make setup` should run {INSTALL_SCRIPT} once: {dry_run}"
    assert not [line for line in dry_run if re.search(r"pip\b", line)], (
        f"`make setup` runs pip besides the shared script: {dry_run}"
    )
    image_calls = [c for stage in stages() for c in stage.values("RUN") if INSTALL_SCRIPT in c]
    assert len(image_calls) == 1, f"the Dockerfile should run {INSTALL_SCRIPT} once"
    for stage in stages():
        for command in stage.values("RUN"):
            assert not re.search(r"pip3?\s+install", command), (
                f"RUN {command}: install through {INSTALL_SCRIPT}, as `make setup` does"
            )

    make_target = script_arguments(make_calls[0])[1:]
    image_venv, *image_target = script_arguments(image_calls[0])
    assert make_target == ["-e", ".[dev]"], "`make setup` installs the project editable, with dev"
    assert image_target == ["."], "the image installs the project itself: not editable, no extras"
    assert image_venv == VENV, (
        f"the build installs into {image_venv}; the final stage copies {VENV}"
    )

    for_make = _recorded_install(tmp_path, make_target)
    for_image = _recorded_install(tmp_path, image_target)
    assert for_make[:-1] == for_image[:-1], f"the steps differ: {for_make} vs {for_image}"
    assert "pip install --quiet --upgrade pip" in for_image[:-1], "pip is not upgraded first"
    make_install = for_make[-1].removesuffix(" ".join(make_target))
    assert make_install == for_image[-1].removesuffix(" ".join(image_target)), (
        f"the project installs differ beyond the target: {for_make[-1]} vs {for_image[-1]}"
    )


def test_install_script_says_how_to_call_it() -> None:
    result = subprocess.run(
        ["bash", str(REPO / INSTALL_SCRIPT), "only-a-venv"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr and "VENV_DIR PIP_TARGET" in result.stderr
