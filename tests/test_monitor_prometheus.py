"""/metrics from a real sidecar, parsed by prometheus-client's own parser; the shipped Prometheus
alert rules and Grafana dashboard use only metrics the sidecar exports."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from sidecar.monitor.prometheus import EXPORTED, PORT_ENV

MONITORING = Path(__file__).resolve().parents[1] / "expansion-pack" / "data" / "monitoring"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _scrape(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(family, **labels) -> float:
    return sum(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())
               and not s.name.endswith(("_created", "_bucket", "_sum")))


def test_metrics_are_served_on_localhost_and_parse_with_prometheus_clients_parser(start_sidecar):
    sc = start_sidecar(**{PORT_ENV: "0"})
    sub = sc.request("monitor.subscribe", {"alerts_only": True})
    url = sub["prometheus_url"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url), url
    assert sc.request("query.run", {"sql": "SELECT 42"})["rows"] == [[42]]
    families = _scrape(url)
    assert set(families) == {name.removesuffix("_total") for name in EXPORTED}
    assert all(name.startswith("bmad_data_") for name in families)
    assert families["bmad_data_query_duration_seconds"].type == "histogram"
    assert _value(families["bmad_data_query_duration_seconds"]) >= 1  # the _count sample
    assert _value(families["bmad_data_ladder_attempts"], rung="first", outcome="ok") >= 1
    assert families["bmad_data_worker_restarts"].type == "counter"
    assert {s.labels["kind"] for s in families["bmad_data_memory_bytes"].samples} == {"managed", "unmanaged", "spilled"}
    assert {s.labels["state"] for s in families["bmad_data_jobs"].samples} == {"running", "queued"}
    assert _value(families["bmad_data_machine_budget_bytes"]) > 0
    assert _value(families["bmad_data_effective_memory_bytes"]) > 0
    # no per-job labels: a series never names a job, a pid or a query
    for family in families.values():
        for sample in family.samples:
            assert not {"job_id", "pid", "query_hash", "job"} & set(sample.labels), sample


def test_a_bad_port_is_a_diagnostic_and_the_monitor_still_runs(start_sidecar):
    sc = start_sidecar(**{PORT_ENV: "metrics"})
    sub = sc.request("monitor.subscribe", {"alerts_only": True})
    assert sub["prometheus_url"] is None
    said = [d for d in sub["diagnostics"] if d["path"] == PORT_ENV]
    assert len(said) == 1 and "'metrics' is not a port number" in said[0]["message"] and said[0]["hint"]


def _exported_names() -> set[str]:
    """Every sample name the sidecar exports, from a live scrape of its registry's families."""
    names = set()
    for name in EXPORTED:
        base = name.removesuffix("_total")
        kind = "counter" if name.endswith("_total") else "histogram" if name.endswith("_duration_seconds") else "gauge"
        names |= {base + suffix for suffix in _SUFFIXES[kind]}
    return names


def _used(text: str) -> set[str]:
    return set(re.findall(r"\bbmad_data_[a-z_]+\b", text))


def test_the_shipped_alert_rules_and_dashboard_use_only_exported_metrics():
    rules = yaml.safe_load((MONITORING / "alert-rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 10 and all(rule.get("alert") for group in rules["groups"] for rule in group["rules"])
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    targets = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exported = _exported_names()
    used_rules = set().union(*(_used(e) for e in exprs))
    used_dash = set().union(*(_used(e) for e in targets))
    assert used_rules - exported == set() and used_dash - exported == set()
    # between them they show every family the sidecar exports
    assert {n.removesuffix("_total") for n in EXPORTED} <= {
        re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used_rules | used_dash
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_a_port_set_the_monitor_starts_with_the_sidecar_before_any_monitor_call(start_sidecar):
    port = _free_port()
    sc = start_sidecar(**{PORT_ENV: str(port)})
    assert sc.request("query.run", {"sql": "SELECT 1"})["rows"] == [[1]]  # no monitor.* call at all
    families = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert _value(families["bmad_data_query_duration_seconds"]) >= 1
    assert any("monitor started with the sidecar (BMAD_DATA_PROMETHEUS_PORT)" in line for line in sc.stderr_tail)
