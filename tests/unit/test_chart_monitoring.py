"""The chart's alerts and Grafana dashboard, rendered by ``helm template``: every query parses as
PromQL, names only metrics the worker exports (or ``up`` and kube-state-metrics' ``kube_*``), is
scoped to the release, and every alert tells on-call what it means and what to do.

Needs the helm binary (``RDQC_HELM``, else ``$RDQC_CACHE_DIR/bin/helm``, else ``helm`` on PATH):
skipped locally without it, a failure when CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import promql_parser
import pytest
import yaml

from worker.observability.prometheus import Metrics

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[2] / "helm" / "rdqc"
RELEASE, NAMESPACE = "qc", "line-7"
WORKERS = f"{RELEASE}-rdqc"  # the Deployment: include "rdqc.fullname"
JOB = f"{WORKERS}-metrics"  # the ServiceMonitor's job label: the metrics Service's name
BOTH_ENABLED = ("prometheusRule.enabled=true", "grafanaDashboard.enabled=true")
# Grafana's own variables are not PromQL; a range of the same shape stands in for them.
GRAFANA_RANGES = re.compile(r"\$__(rate_interval|interval|range)")
CAMEL_CASE = re.compile(r"Rdqc(?:[A-Z][a-z]+)+")


def _helm_unavailable(reason: str) -> NoReturn:
    message = f"helm not available: {reason}. Install it with the project's tools (make test)."
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _find_helm() -> str:
    cache = Path(os.environ.get("RDQC_CACHE_DIR", Path.home() / ".cache" / "rdqc"))
    for candidate in (os.environ.get("RDQC_HELM"), str(cache / "bin" / "helm"), "helm"):
        if candidate and (found := shutil.which(candidate)):
            return found
    _helm_unavailable(f"not in RDQC_HELM, {cache / 'bin'} or PATH")


@pytest.fixture(scope="module")
def helm() -> str:
    return _find_helm()


def render(helm: str, *settings: str) -> list[dict[str, Any]]:
    command = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for setting in settings:
        command += ["--set", setting]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one_of_kind(objects: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def alerts_of(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rule = one_of_kind(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_configmap(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    maps = [o for o in objects if o["kind"] == "ConfigMap" and "rdqc-workers.json" in o["data"]]
    assert len(maps) == 1, f"expected one dashboard ConfigMap, rendered {len(maps)}"
    return maps[0]


def dashboard_of(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(dashboard_configmap(objects)["data"]["rdqc-workers.json"])
    return loaded


def data_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


@dataclass(frozen=True)
class Query:
    where: str  # the alert or panel it belongs to, for failure messages
    expr: str


def queries(objects: Sequence[dict[str, Any]]) -> list[Query]:
    found = [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alerts_of(objects)]
    for panel in data_panels(dashboard_of(objects)):
        found += [Query(f"panel {panel['title']!r}", t["expr"]) for t in panel["targets"]]
    return found


def parse(query: Query) -> promql_parser.Expr:
    try:
        return promql_parser.parse(GRAFANA_RANGES.sub("5m", query.expr))
    except ValueError as exc:
        pytest.fail(f"{query.where}: not PromQL ({exc}):\n{query.expr}", pytrace=False)


def selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, pre_visit=visit)
    return found


def equal_matchers(selector: promql_parser.VectorSelector) -> dict[str, str]:
    return {
        m.name: m.value for m in selector.matchers.matchers if m.op == promql_parser.MatchOp.Equal
    }


def exported_metric_names() -> set[str]:
    """The series names a worker exports, as Prometheus stores them."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def is_from_other_exporter(name: str) -> bool:
    return name == "up" or name.startswith("kube_")


@pytest.fixture(scope="module")
def rendered(helm: str) -> list[dict[str, Any]]:
    return render(helm, *BOTH_ENABLED)


def test_every_query_parses_and_names_only_exported_metrics(
    rendered: list[dict[str, Any]],
) -> None:
    exported = exported_metric_names()
    assert {"rdqc_gpu_memory_allocated_bytes", "rdqc_frames_scored_total"} <= exported
    unknown = [
        f"{query.where}: {selector.name}"
        for query in queries(rendered)
        for selector in selectors(parse(query))
        if selector.name not in exported and not is_from_other_exporter(selector.name)
    ]
    assert not unknown, "metrics no worker exports:\n" + "\n".join(unknown)


def test_every_alert_selector_is_scoped_to_the_release(rendered: list[dict[str, Any]]) -> None:
    for rule in alerts_of(rendered):
        for selector in selectors(parse(Query(rule["alert"], rule["expr"]))):
            if selector.name.startswith("kube_"):
                wanted = {"namespace": NAMESPACE, "deployment": WORKERS}
            else:
                wanted = {"namespace": NAMESPACE, "job": JOB}
            got = equal_matchers(selector)
            assert wanted.items() <= got.items(), f"{rule['alert']}: {selector.name} {got}"


def test_every_dashboard_query_follows_the_namespace_and_release_variables(
    rendered: list[dict[str, Any]],
) -> None:
    for panel in data_panels(dashboard_of(rendered)):
        for target in panel["targets"]:
            for selector in selectors(parse(Query(panel["title"], target["expr"]))):
                matchers = {(m.name, m.value) for m in selector.matchers.matchers}
                assert {("namespace", "$namespace"), ("job", "$job")} <= matchers, (
                    f"panel {panel['title']!r}: {selector.name} ignores the variables"
                )


def test_every_alert_tells_on_call_how_bad_it_is_what_it_means_and_what_to_do(
    rendered: list[dict[str, Any]],
) -> None:
    alerts = alerts_of(rendered)
    for rule in alerts:
        name = rule["alert"]
        assert CAMEL_CASE.fullmatch(name), f"{name}: not CamelCase with the Rdqc prefix"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert len(annotations["summary"].strip()) > 20, f"{name}: no summary"
        assert len(annotations["description"].split()) >= 30, f"{name}: no runbook text"
    assert len({rule["alert"] for rule in alerts}) == len(alerts), "duplicate alert names"


def test_the_alerts_cover_what_on_call_needs(rendered: list[dict[str, Any]]) -> None:
    names = {rule["alert"] for rule in alerts_of(rendered)}
    assert names >= {
        "RdqcConsumerLagGrowing",
        "RdqcDeadLetterRateHigh",
        "RdqcNoWorkersUp",
        "RdqcNoWorkersReady",
        "RdqcModelUnavailable",
        "RdqcModelLoadFailures",
        "RdqcSinkFailing",
        "RdqcCommitFailures",
        "RdqcOffsetGap",
        "RdqcHeartbeatFailures",
        "RdqcShadowWritesFailing",
    }


def test_thresholds_and_durations_come_from_values(helm: str) -> None:
    objects = render(
        helm,
        *BOTH_ENABLED,
        "prometheusRule.thresholds.lagFrames=777",
        "prometheusRule.thresholds.lagFor=42m",
        "prometheusRule.thresholds.deadLetterRatio=0.125",
        "prometheusRule.thresholds.sinkFailingFor=7m",
        "prometheusRule.alertLabels.team=vision",
        "prometheusRule.additionalLabels.release=kube-prometheus-stack",
    )
    rules = {rule["alert"]: rule for rule in alerts_of(objects)}
    assert "> 777" in rules["RdqcConsumerLagGrowing"]["expr"]
    assert rules["RdqcConsumerLagGrowing"]["for"] == "42m"
    assert "> 0.125" in rules["RdqcDeadLetterRateHigh"]["expr"]
    assert rules["RdqcSinkFailing"]["for"] == "7m"
    assert all(rule["labels"]["team"] == "vision" for rule in rules.values())
    labels = one_of_kind(objects, "PrometheusRule")["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"


def test_without_kube_state_metrics_no_alert_needs_it(helm: str) -> None:
    objects = render(helm, *BOTH_ENABLED, "prometheusRule.kubeStateMetrics=false")
    names = {rule["alert"] for rule in alerts_of(objects)}
    assert "RdqcNoWorkersUp" in names and "RdqcNoWorkersReady" not in names
    for rule in alerts_of(objects):
        used = {s.name for s in selectors(parse(Query(rule["alert"], rule["expr"])))}
        assert not any(name.startswith("kube_") for name in used), rule["alert"]


def test_the_dashboard_configmap_is_found_by_grafanas_sidecar(
    rendered: list[dict[str, Any]],
) -> None:
    configmap = dashboard_configmap(rendered)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "rdqc"}
    # .Files.Get carries the file verbatim, so the JSON in the repository is what Grafana loads.
    shipped = (CHART / "dashboards" / "rdqc-workers.json").read_text()
    assert configmap["data"]["rdqc-workers.json"] == shipped.rstrip("\n")


def test_the_dashboard_is_templated_and_every_panel_has_a_query(
    rendered: list[dict[str, Any]],
) -> None:
    dashboard = dashboard_of(rendered)
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["product_line"]["type"] == "query"
    assert "product_line" in variables["product_line"]["definition"]
    panels = list(data_panels(dashboard))
    assert len({panel["id"] for panel in panels}) == len(panels), "duplicate panel ids"
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert source == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_the_dashboard_shows_what_the_issue_asks_for(rendered: list[dict[str, Any]]) -> None:
    used = {
        selector.name
        for panel in data_panels(dashboard_of(rendered))
        for target in panel["targets"]
        for selector in selectors(parse(Query(panel["title"], target["expr"])))
    }
    assert used >= {
        "rdqc_frames_scored_total",
        "rdqc_frames_flagged_total",
        "rdqc_end_to_end_latency_seconds_bucket",
        "rdqc_queue_wait_seconds_bucket",
        "rdqc_inference_seconds_bucket",
        "rdqc_consumer_lag",
        "rdqc_frames_dead_lettered_total",
        "rdqc_batch_size_bucket",
        "rdqc_in_flight_bytes",
        "rdqc_gpu_memory_allocated_bytes",
        "rdqc_gpu_memory_reserved_bytes",
        "rdqc_model_version_info",
        "rdqc_shadow_version_info",
        "rdqc_sink_failing",
        "up",
    }


def test_nothing_renders_when_disabled(helm: str) -> None:
    objects = render(helm)
    assert not [o for o in objects if o["kind"] == "PrometheusRule"]
    assert not [o for o in objects if o["kind"] == "ConfigMap" and "rdqc-workers.json" in o["data"]]
