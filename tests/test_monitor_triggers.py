"""scaling_triggers and degradation_procedures: each trigger or stage a rule that fires and acts on
real admission control, or a warning at its line saying why it is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

from sidecar.config.pack import load_pack
from sidecar.monitor.actions import Remedies
from sidecar.monitor.alerts import ThresholdEngine
from sidecar.monitor.config import monitor_config
from sidecar.monitor.metrics import MachineMetrics, MetricsSample
from sidecar.workers.admission import Admission
from test_monitor_actions import AdmissionLevers

THRESHOLDS = "data/resource-thresholds-config.yaml"
ORIGINAL = Path(__file__).resolve().parent / "fixtures" / "original-pack"
GB = 1000**3


def _original(tmp_path: Path):
    pack = tmp_path / "pack"
    shutil.copytree(Path(__file__).resolve().parents[1] / "expansion-pack", pack)
    shutil.copy(ORIGINAL / "resource-thresholds-config.yaml", pack / THRESHOLDS)
    return monitor_config(load_pack(pack), str(pack / "state")), pack / THRESHOLDS


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_original_packs_triggers_and_stages_become_rules_or_refusals_at_their_line(tmp_path):
    config, path = _original(tmp_path)
    rules = {r.name: r for r in config.rules.rules}
    up = rules["memory_scaling_scale_up_1"]
    assert (up.metric, up.threshold, up.sustained_ms, up.remediation_actions) == (
        "duckdb_memory_percent", 80.0, 300_000, ["increase_memory_limit"]
    )
    assert up.actions[0].factor == 1.5 and up.actions[0].high == 32 * GB
    assert up.where == f"{path}:{_line_of(path, 'memory_percent > 80 AND')}"
    down = rules["memory_scaling_scale_down_1"]
    assert down.below and down.actions[0].factor == 0.8 and down.actions[0].low == 1 * GB
    stage3 = rules["memory_pressure_stage_3"]
    assert (stage3.metric, stage3.threshold, stage3.severity) == ("system_memory_percent", 95.0, "emergency")
    assert stage3.remediation_actions == [
        "reject_new_connections", "kill_long_running_queries", "emergency_memory_cleanup", "reduce_memory_limit"
    ]
    assert stage3.message_template == "Entering emergency memory mode"
    assert rules["performance_degradation_connection_throttling"].sustained_ms == 300_000
    by_line = {d.line: d.message for d in config.diagnostics if d.severity == "warning"}
    assert "connection_usage' is not taken: the sidecar has no connection pool" in by_line[
        _line_of(path, "connection_usage > 80%")
    ]
    assert "OR is not supported" in by_line[_line_of(path, "system_memory < 15% OR")]
    assert "'enable_query_result_caching' is not taken" in by_line[_line_of(path, '"enable_query_result_caching"')]
    assert "average_query_time' is not taken" in by_line[_line_of(path, "2x baseline")]


def _sample() -> MetricsSample:
    machine = MachineMetrics(
        effective_memory_bytes=100, used_memory_bytes=10, cpu_percent=0.0, spill_free_bytes=0, machine_budget_bytes=0
    )
    return MetricsSample(at_ms=0, machine=machine)


def _drive(engine: ThresholdEngine, remedies: Remedies, values: dict[str, float], now: int) -> list[str]:
    """What the monitor service does with one sample: judge, act on what fired, relax holds."""
    fired = []
    for event in engine.feed(values, {}, now):
        rule = next(r for r in engine.rules.rules if r.name == event.rule)
        if event.state == "firing":
            remedies.act(rule, event.message, _sample(), force_cleanup=False)
            fired.append(event.rule)
        else:
            remedies.lift(event.rule)
    remedies.relax(values)
    return fired


def test_a_sustained_scale_up_trigger_gives_new_jobs_more_memory_and_a_low_one_less(tmp_path):
    config, _ = _original(tmp_path)
    keep = {"memory_scaling_scale_up_1", "memory_scaling_scale_down_1"}
    engine = ThresholdEngine(type(config.rules)(rules=[r for r in config.rules.rules if r.name in keep],
                                                levels=config.rules.levels))
    admission = Admission(machine_budget=64 * GB, max_jobs=2)
    remedies = Remedies(AdmissionLevers(admission))
    assert _drive(engine, remedies, {"duckdb_memory_percent": 85.0}, 0) == []  # not sustained yet
    assert _drive(engine, remedies, {"duckdb_memory_percent": 85.0}, 299_000) == []
    assert _drive(engine, remedies, {"duckdb_memory_percent": 85.0}, 300_000) == ["memory_scaling_scale_up_1"]
    grown = admission.admit(2 * GB, 4 * GB, cancelled=lambda: False)
    assert grown is not None and grown.bytes == 3 * GB  # scale_factor 1.5
    admission.release(grown)
    capped = admission.admit(30 * GB, 30 * GB, cancelled=lambda: False)
    assert capped is not None and capped.bytes == 32 * GB  # max_memory
    admission.release(capped)
    # no job running: the scale-down trigger (memory_percent < 30) does not fire, the scale-up lifts
    assert _drive(engine, remedies, {}, 301_000) == [] and admission.holds == {}
    _drive(engine, remedies, {"duckdb_memory_percent": 10.0}, 400_000)
    fired = _drive(engine, remedies, {"duckdb_memory_percent": 10.0}, 400_000 + 1_800_000)
    assert fired == ["memory_scaling_scale_down_1"]
    shrunk = admission.admit(2 * GB, 2 * GB, cancelled=lambda: False)
    assert shrunk is not None and shrunk.bytes == int(1.6 * GB)
    admission.release(shrunk)
    floor = admission.admit(GB, GB, cancelled=lambda: False)
    assert floor is not None and floor.bytes == GB  # min_memory
    _drive(engine, remedies, {"duckdb_memory_percent": 40.0}, 2_300_000)  # above 30 + 5: lifted
    assert admission.holds == {}


STAGE = """
degradation_procedures:
  memory_pressure:
    stage_1_2_percent:
      actions:
        - "limit_concurrent_queries"
        - "enable_query_result_caching"
      message: "Entering memory conservation mode"
"""


def test_a_planted_degradation_stage_fires_in_a_real_sidecar_and_narrows_admission(start_sidecar, pack_dir):
    path = pack_dir / THRESHOLDS
    path.write_text(path.read_text() + STAGE)
    sc = start_sidecar(BMAD_DATA_MAX_CONCURRENT_JOBS="2")
    sub = sc.request("monitor.subscribe", {"interval_ms": 200, "alerts_only": True})
    refused = [d for d in sub["diagnostics"] if "enable_query_result_caching" in d["message"]]
    assert len(refused) == 1 and refused[0]["line"] == _line_of(path, '"enable_query_result_caching"')
    fired = sc.wait_for(
        lambda n: n.get("method") == "monitor/alert" and n["params"]["rule"] == "memory_pressure_stage_1", timeout=60
    )["params"]
    assert fired["message"] == "Entering memory conservation mode" and fired["severity"] == "warning"
    assert fired["actions_taken"] == ["limit_concurrent_queries"]
    holds = sc.request("monitor.snapshot")["holds"]
    assert holds == [{"rule": "memory_pressure_stage_1", "pause": False, "max_jobs": 1, "scale": None}]
    assert sc.request("query.run", {"sql": "SELECT 42"})["rows"] == [[42]]  # one at a time still runs
