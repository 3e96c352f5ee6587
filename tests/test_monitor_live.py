"""The monitor in a real sidecar: a lowered duckdb_memory warning fires while a real query runs,
reaches the subscriber and the alert log (whole JSON lines, even after SIGKILL), and resolves
once the job has ended."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from sidecar.client import RpcError
from test_monitor_webhook import Hook

THRESHOLDS = "data/resource-thresholds-config.yaml"
# a GROUP BY of 2M keys: DuckDB's hash table holds tens of MB of managed memory for seconds
HEAVY = "SELECT count(*) FROM (SELECT i % 2000000 AS k, sum(i) FROM range(40000000) t(i) GROUP BY k)"


WEBHOOK = """
alerting_rules:
  severity_levels:
    warning:
      notification_channels: ["log", "console", "webhook"]
notification_channels:
  webhook:
    enabled: true
    url: "http://${HOOK_HOST}/alerts"
"""


def _lower_warning(pack_dir: Path) -> None:
    path = pack_dir / THRESHOLDS
    text = path.read_text()
    lowered = text.replace("    info: 50\n    warning: 75\n", "    info: 1\n    warning: 2\n")
    assert lowered != text
    path.write_text(lowered + WEBHOOK)


def _alerts(sc, rule: str) -> list[dict]:
    return [n["params"] for n in sc.notifications if n.get("method") == "monitor/alert" and n["params"]["rule"] == rule]


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def test_a_lowered_warning_fires_while_a_query_runs_and_resolves_after(start_sidecar, pack_dir, tmp_path, hook):
    _lower_warning(pack_dir)
    sc = start_sidecar(
        BMAD_DATA_MEMORY_LIMIT="1GB", BMAD_DATA_MAX_CONCURRENT_JOBS="1", HOOK_HOST=f"127.0.0.1:{hook.port}"
    )
    sub = sc.request("monitor.subscribe", {"interval_ms": 200})
    assert sub["alerting"] is True and sub["interval_ms"] == 200
    assert [d for d in sub["diagnostics"] if d["severity"] == "error"] == [], sub["diagnostics"]
    _, answer = sc.call("query.run", {"sql": HEAVY})
    fired = sc.wait_for(
        lambda n: n.get("method") == "monitor/alert" and n["params"]["rule"] == "duckdb_memory_warning",
        timeout=60,
    )["params"]
    assert fired["state"] == "firing" and fired["severity"] == "warning" and fired["threshold"] == 2.0
    assert re.fullmatch(r"DuckDB memory usage at [0-9.]+% of limit \([0-9]+MB\)", fired["message"]), fired
    assert fired["value"] >= 2.0 and fired["actions_taken"] == ["monitor"]
    assert answer.result(timeout=120)["rows"] == [[2000000]]
    resolved = sc.wait_for(
        lambda n: n.get("method") == "monitor/alert" and n["params"]["state"] == "resolved"
        and n["params"]["id"] == fired["id"],
        timeout=30,
    )["params"]
    assert resolved["rule"] == "duckdb_memory_warning" and resolved["message"].startswith("resolved: ")
    assert [a["state"] for a in _alerts(sc, "duckdb_memory_warning")] == ["firing", "resolved"]
    # the subscriber saw the running worker's memory split
    busy = [
        w
        for n in sc.notifications
        if n.get("method") == "monitor/metrics" and n["params"]["subscription"] == sub["subscription"]
        for w in n["params"]["sample"]["workers"]
    ]
    assert busy and all(w["rss_bytes"] == w["managed_bytes"] + w["unmanaged_bytes"] for w in busy if w["rss_bytes"] >= w["managed_bytes"])
    assert max(w["managed_bytes"] for w in busy) > 0 and busy[0]["duckdb_limit_bytes"] > 0
    snap = sc.request("monitor.snapshot")
    assert snap["alerts"] == [] and snap["metrics"]["machine"]["effective_memory_bytes"] > 0
    history = sc.request("monitor.history", {"metric": "duckdb_memory_percent"})
    assert max(v for _, v in history["points"]) >= 2.0 and history["capacity"] == 100  # the pack's retention
    assert [a["state"] for a in history["alerts"] if a["id"] == fired["id"]] == ["firing", "resolved"]
    # the log channel: one JSON object per line, the same two events
    log = tmp_path / "state" / "logs" / "duckdb-alerts.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["id"], r["state"]) for r in records if r["rule"] == "duckdb_memory_warning"] == [
        (fired["id"], "firing"),
        (fired["id"], "resolved"),
    ]
    # the local webhook got both, as JSON
    deadline = time.monotonic() + 10
    while len([b for b in hook.bodies if b["id"] == fired["id"]]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(b["id"], b["state"]) for b in hook.bodies if b["rule"] == "duckdb_memory_warning"] == [
        (fired["id"], "firing"),
        (fired["id"], "resolved"),
    ]
    assert set(hook.paths) == {"/alerts"}
    sc.proc.send_signal(signal.SIGKILL)
    sc.proc.wait(timeout=10)
    assert log.read_bytes().endswith(b"\n")
    assert all(json.loads(line) for line in log.read_text().splitlines())


def test_unsubscribe_stops_metrics_and_unknown_metric_suggests(sidecar):
    sub = sidecar.request("monitor.subscribe", {"interval_ms": 100})
    sidecar.wait_for(lambda n: n.get("method") == "monitor/metrics", timeout=10)
    assert sidecar.request("monitor.unsubscribe", {"subscription": sub["subscription"]}) == {"unsubscribed": True}
    assert sidecar.request("monitor.unsubscribe", {"subscription": sub["subscription"]}) == {"unsubscribed": False}
    with pytest.raises(RpcError) as err:
        sidecar.request("monitor.history", {"metric": "cpu_precent"})
    assert err.value.code == "INVALID_PARAMS" and "did you mean 'cpu_percent'" in str(err.value)


def test_monitoring_flag_off_refuses_with_the_flag_named(start_sidecar, pack_dir):
    flags = pack_dir / "config/feature-flags.yaml"
    text = flags.read_text()
    flags.write_text(text.replace("  duckdb_monitoring:\n    enabled: true", "  duckdb_monitoring:\n    enabled: false"))
    sc = start_sidecar()
    with pytest.raises(RpcError) as err:
        sc.request("monitor.subscribe", {})
    assert err.value.code == "FEATURE_DISABLED" and err.value.data["details"]["flag"] == "duckdb_monitoring"


def test_an_edit_of_the_thresholds_file_applies_to_a_running_monitor(start_sidecar, pack_dir):
    sc = start_sidecar(BMAD_DATA_MEMORY_LIMIT="1GB", BMAD_DATA_MAX_CONCURRENT_JOBS="1")
    sc.request("monitor.subscribe", {"alerts_only": True})
    path = pack_dir / THRESHOLDS
    path.write_text(path.read_text().replace("    info: 50\n    warning: 75\n", "    info: 1\n    warning: 2\n"))
    sc.wait_for(lambda n: n.get("method") == "config/changed", timeout=30)
    assert sc.request("query.run", {"sql": HEAVY})["rows"] == [[2000000]]
    fired = sc.wait_for(
        lambda n: n.get("method") == "monitor/alert" and n["params"]["rule"] == "duckdb_memory_warning", timeout=30
    )["params"]
    assert fired["threshold"] == 2.0 and fired["state"] == "firing"
    assert not [n for n in sc.notifications if n.get("method") == "monitor/metrics"]  # alerts_only


def test_an_alert_that_does_not_auto_resolve_waits_for_monitor_acknowledge(start_sidecar, pack_dir):
    path = pack_dir / THRESHOLDS
    lowered = path.read_text().replace("    info: 50\n    warning: 75\n", "    info: 1\n    warning: 2\n")
    path.write_text(lowered + "\nalerting_rules:\n  severity_levels:\n    warning:\n      auto_resolve: false\n")
    sc = start_sidecar(BMAD_DATA_MEMORY_LIMIT="1GB", BMAD_DATA_MAX_CONCURRENT_JOBS="1")
    sc.request("monitor.subscribe", {"interval_ms": 200, "alerts_only": True})
    with pytest.raises(RpcError) as err:
        sc.request("monitor.acknowledge", {"id": "duckdb_memory_warning-9"})
    assert err.value.code == "INVALID_PARAMS" and "monitor.snapshot lists the alerts firing now" in err.value.hint
    assert sc.request("query.run", {"sql": HEAVY})["rows"] == [[2000000]]
    fired = sc.wait_for(
        lambda n: n.get("method") == "monitor/alert" and n["params"]["rule"] == "duckdb_memory_warning", timeout=30
    )["params"]
    time.sleep(1.0)  # five samples after the job ended: the value has cleared, the alert stays
    assert fired["id"] in [a["id"] for a in sc.request("monitor.snapshot")["alerts"]]
    assert [a["state"] for a in _alerts(sc, "duckdb_memory_warning")] == ["firing"]
    answer = sc.request("monitor.acknowledge", {"id": fired["id"]})
    assert answer["resolved"]["state"] == "resolved" and answer["resolved"]["id"] == fired["id"]
    assert fired["id"] not in [a["id"] for a in sc.request("monitor.snapshot")["alerts"]]
    sc.wait_for(lambda n: n.get("method") == "monitor/alert" and n["params"]["state"] == "resolved"
                and n["params"]["id"] == fired["id"], timeout=10)
