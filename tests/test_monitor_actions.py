"""Remediation actions in a real sidecar: a planted emergency level interrupts a real running query
with an error naming the rule, cleans up and shrinks new jobs; holds on real admission control
pause, narrow and resize jobs and lift when the rule clears."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sidecar.client import RpcError
from sidecar.monitor.actions import ActionSpec, Remedies
from sidecar.monitor.metrics import MachineMetrics, MetricsSample, WorkerMetrics
from sidecar.workers.admission import Admission, Hold

THRESHOLDS = "data/resource-thresholds-config.yaml"
# runs for minutes unless stopped: a GROUP BY of 2M keys over 400M rows
ENDLESS = "SELECT count(*) FROM (SELECT i % 2000000 AS k, sum(i) FROM range(400000000) t(i) GROUP BY k)"

EMERGENCY = """
alerting_rules:
  severity_levels:
    emergency:
      notification_channels: ["log", "console"]
      auto_resolve: false
      auto_remediation: true
  alert_configs:
    system_memory_emergency:
      severity: emergency
      message_template: "System memory emergency at {system_memory_percent}% used"
      remediation_actions: ["emergency_cleanup", "reduce_memory_limit", "kill_queries"]
"""


def _plant_emergency(pack_dir: Path) -> Path:
    path = pack_dir / THRESHOLDS
    text = path.read_text()
    planted = text.replace("    warning: 80\n    critical: 90\n    emergency: 95\n", "    warning: 1\n    critical: 2\n    emergency: 3\n")
    assert planted != text
    path.write_text(planted + EMERGENCY)
    return path


def test_a_planted_emergency_interrupts_the_running_query_naming_the_rule(start_sidecar, pack_dir):
    path = _plant_emergency(pack_dir)
    sc = start_sidecar(BMAD_DATA_MEMORY_LIMIT="1GB", BMAD_DATA_MAX_CONCURRENT_JOBS="1")
    limit_sql = {"sql": "SELECT current_setting('memory_limit')"}
    before = sc.request("query.run", limit_sql)["rows"][0][0]
    _, answer = sc.call("query.run", {"sql": ENDLESS, "progress_token": "q"})
    sc.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["value"].get("phase") == "running", timeout=60)
    sub = sc.request("monitor.subscribe", {"interval_ms": 200})  # the monitor starts now, the job running
    assert [d for d in sub["diagnostics"] if d["severity"] == "error"] == [], sub["diagnostics"]
    with pytest.raises(RpcError) as failed:
        answer.result(timeout=60)
    error, message = failed.value, str(failed.value)
    assert error.code == "CANCELLED", error.data
    assert "stopped by the monitor: alert rule 'system_memory_emergency'" in message
    assert f"{path}:" in message and "System memory emergency at" in message and "kill_queries" in message
    assert error.data["details"] == {"stopped_by": "monitor", "rule": "system_memory_emergency"}
    fired = sc.wait_for(
        lambda n: n.get("method") == "monitor/alert" and n["params"]["rule"] == "system_memory_emergency", timeout=60
    )["params"]
    assert fired["state"] == "firing"
    assert fired["actions_taken"] == ["emergency_cleanup", "reduce_memory_limit", "kill_queries"], fired
    said = {r["action"]: r["detail"] for r in fired["remediation"]}
    assert said["kill_queries"].startswith("interrupted job ") and "idle workers stopped" in said["emergency_cleanup"]
    # while the rule holds, a new job gets half the memory ceiling, and so half DuckDB's limit
    snap = sc.request("monitor.snapshot")
    assert snap["holds"] == [{"rule": "system_memory_emergency", "pause": False, "max_jobs": None, "scale": 0.5}]
    after = sc.request("query.run", limit_sql)["rows"][0][0]
    assert _bytes(after) < 0.6 * _bytes(before), (before, after)


def _bytes(duckdb_size: str) -> float:
    number, unit = duckdb_size.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


def _sample(*workers: WorkerMetrics) -> MetricsSample:
    machine = MachineMetrics(
        effective_memory_bytes=100, used_memory_bytes=50, cpu_percent=0.0, spill_free_bytes=0, machine_budget_bytes=80
    )
    return MetricsSample(at_ms=0, machine=machine, workers=list(workers))


class AdmissionLevers:
    """Levers on a real Admission; cleanup and interrupts are recorded (the live test runs them for real)."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.interrupted: list[tuple[int, str]] = []

    @property
    def max_jobs(self) -> int:
        return self.admission.max_jobs

    def cleanup(self, *, aggressive: bool) -> tuple[int, int]:
        return 0, 0

    def hold(self, hold: Hold) -> None:
        self.admission.hold(hold)

    def lift(self, rule: str) -> bool:
        return self.admission.lift(rule)

    def interrupt(self, job: int, reason: str) -> bool:
        self.interrupted.append((job, reason))
        return True


class _Rule:
    def __init__(self, name: str, metric: str, actions: list[ActionSpec], resolve_below: float = 70.0) -> None:
        self.name, self.metric, self.actions, self.resolve_below = name, metric, actions, resolve_below
        self.where, self.below = "file.yaml:9", False


def test_throttle_pauses_admission_until_the_rule_clears():
    admission = Admission(machine_budget=1000, max_jobs=2)
    remedies = Remedies(AdmissionLevers(admission))
    rule = _Rule("cpu_usage_warning", "cpu_percent", [ActionSpec(name="throttle_queries", kind="pause")])
    said = remedies.act(rule, "High CPU", _sample(), force_cleanup=False)
    assert [(r.action, r.done) for r in said] == [("throttle_queries", True)]
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(admission.admit(100, 100, cancelled=lambda: False)))
    waiter.start()
    deadline = time.monotonic() + 5
    while admission.waiting() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.waiting() == 1 and not admission.running  # paused: the job waits
    assert remedies.relax({"cpu_percent": 75.0}) == []  # still above the resolve mark
    assert remedies.relax({"cpu_percent": 60.0}) == ["cpu_usage_warning"]
    waiter.join(timeout=5)
    assert len(got) == 1 and got[0] is not None and not admission.holds


def test_narrow_and_shrink_apply_to_new_jobs():
    admission = Admission(machine_budget=1000, max_jobs=4)
    remedies = Remedies(AdmissionLevers(admission))
    rule = _Rule(
        "duckdb_memory_critical",
        "duckdb_memory_percent",
        [ActionSpec(name="reduce_connections", kind="narrow"), ActionSpec(name="reduce_memory_limit", kind="shrink")],
    )
    remedies.act(rule, "m", _sample(), force_cleanup=False)
    first = admission.admit(200, 400, cancelled=lambda: False)
    second = admission.admit(200, 400, cancelled=lambda: False)
    assert first is not None and second is not None
    assert (first.bytes, first.most) == (100, 200)  # half the ceiling, half the growth room
    third = admission.admit(200, 400, cancelled=lambda: True)  # a third waits: at most 2 at once
    assert third is None
    remedies.lift("duckdb_memory_critical")
    assert admission.admit(200, 400, cancelled=lambda: False).bytes == 200  # type: ignore[union-attr]


def test_kill_picks_the_job_the_rule_is_about_and_says_so():
    levers = AdmissionLevers(Admission(machine_budget=1000, max_jobs=2))
    remedies = Remedies(levers)
    small = WorkerMetrics(job_id="1", pid=11, rss_bytes=10, managed_bytes=9, unmanaged_bytes=1, spilled_bytes=0,
                          ceiling_bytes=100, duckdb_limit_bytes=10, elapsed_ms=9000, query_hash="aaa")
    big = WorkerMetrics(job_id="2", pid=12, rss_bytes=90, managed_bytes=10, unmanaged_bytes=80, spilled_bytes=0,
                        ceiling_bytes=100, duckdb_limit_bytes=80, elapsed_ms=100, query_hash="bbb")
    kill = [ActionSpec(name="kill_queries", kind="kill")]
    remedies.act(_Rule("system_memory_emergency", "system_memory_percent", kill), "low", _sample(small, big), False)
    remedies.act(_Rule("duckdb_memory_emergency", "duckdb_memory_percent", kill), "busy", _sample(small, big), False)
    remedies.act(_Rule("query_execution_critical", "longest_job_ms", kill), "long", _sample(small, big), False)
    assert [job for job, _ in levers.interrupted] == [2, 1, 1]  # largest RSS, fullest buffer, longest
    assert levers.interrupted[0][1].startswith("alert:system_memory_emergency:alert rule 'system_memory_emergency'")
    none = remedies.act(_Rule("cpu_usage_critical", "cpu_percent", kill), "cpu", _sample(), False)
    assert [(r.action, r.done, r.detail) for r in none] == [("kill_queries", False, "no job was running")]
