"""The threshold engine: rules from the pack's file (every key honoured or refused at its line),
filled messages, hysteresis, cooldown, sustained duration, escalation and acknowledgement."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.config.pack import load_pack
from sidecar.monitor.alerts import ThresholdEngine
from sidecar.monitor.config import monitor_config
from sidecar.monitor.rules import HYSTERESIS_POINTS

THRESHOLDS = "data/resource-thresholds-config.yaml"
ORIGINAL = Path(__file__).resolve().parent / "fixtures" / "original-pack"  # copied from ../shared/reference

ALERTING = """
alerting_rules:
  severity_levels:
    warning:
      description: "Warning level alerts requiring attention"
      notification_channels: ["log", "console"]
      cooldown_minutes: 30
      auto_resolve: true
      escalation_delay_minutes: 60
    critical:
      notification_channels: ["log", "console", "sms"]
      cooldown_minutes: 15
      auto_resolve: false
  alert_configs:
    duckdb_memory_warning:
      severity: warning
      message_template: "DuckDB memory usage at {memory_percent}% of limit ({memory_usage_mb}MB)"
      remediation_actions: ["monitor", "prepare_cleanup",
                            "analyze_query"]
    high_cpu_usage:
      severity: warning
      message_template: "High CPU usage detected: {cpu_percent}% for {duration_minutes} minutes"
"""


def _pack_with(pack_dir: Path, text: str) -> Path:
    path = pack_dir / THRESHOLDS
    path.write_text(path.read_text() + text)
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _rules(pack_dir: Path):
    config = monitor_config(load_pack(pack_dir), str(pack_dir / "state"))
    return config.rules, config.diagnostics


def test_rules_come_from_the_files_levels_with_their_lines(pack_dir):
    path = _pack_with(pack_dir, ALERTING)
    ruleset, diags = _rules(pack_dir)
    by_name = {r.name: r for r in ruleset.rules}
    warn = by_name["duckdb_memory_warning"]
    assert warn.threshold == 75.0 and warn.resolve_below == 75.0 - HYSTERESIS_POINTS
    assert warn.where == f"{path}:{_line_of(path, 'warning: 75')}"
    assert by_name["spill_activity_warning"].threshold == 1e9  # "1GB"
    assert by_name["cpu_usage_warning"].sustained_ms == 300000
    assert by_name["query_execution_critical"].threshold == 15000
    assert ruleset.levels["warning"].cooldown_ms == 30 * 60_000
    assert ruleset.levels["warning"].escalation_delay_ms == 60 * 60_000
    assert ruleset.levels["critical"].auto_resolve is False
    # every refused key is a warning at its own line, naming what to do
    messages = {(d.line, d.severity): d.message for d in diags}
    assert "sms has no provider" in messages[(_line_of(path, '"console", "sms"'), "warning")]
    assert "'analyze_query' is not taken: " in messages[(_line_of(path, '"analyze_query"'), "warning")]
    assert warn.remediation_actions == ["monitor", "prepare_cleanup"]
    assert [(a.name, a.kind) for a in warn.actions] == [("monitor", "watch"), ("prepare_cleanup", "cleanup")]


def test_an_unknown_placeholder_is_an_error_at_its_line(pack_dir):
    path = _pack_with(
        pack_dir,
        '\nalerting_rules:\n  alert_configs:\n    duckdb_memory_warning:\n'
        '      message_template: "at {memory_precent}%"\n',
    )
    _, diags = _rules(pack_dir)
    errors = [d for d in diags if d.severity == "error"]
    assert len(errors) == 1
    assert errors[0].file == str(path) and errors[0].line == _line_of(path, "memory_precent")
    assert "{memory_precent}" in errors[0].message and "did you mean 'memory_percent'" in errors[0].message


def test_unknown_alert_and_level_names_suggest_the_closest(pack_dir):
    path = _pack_with(
        pack_dir,
        "\nalerting_rules:\n  severity_levels:\n    warnign:\n      cooldown_minutes: 1\n"
        "  alert_configs:\n    duckdb_memory_warnin:\n      severity: warning\n",
    )
    _, diags = _rules(pack_dir)
    by_line = {d.line: d.message for d in diags}
    assert "did you mean 'warning'" in by_line[_line_of(path, "warnign:")]
    assert "did you mean 'duckdb_memory_warning'" in by_line[_line_of(path, "duckdb_memory_warnin:")]


def test_the_original_packs_file_loads_with_every_refusal_named(tmp_path):
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(Path(__file__).resolve().parents[1] / "expansion-pack", pack)
    shutil.copy(ORIGINAL / "resource-thresholds-config.yaml", pack / THRESHOLDS)
    ruleset, diags = _rules(pack)
    assert not [d for d in diags if d.severity == "error"], diags
    refused = " ".join(d.message for d in diags)
    for action in ("analyze_query", "process_optimization"):
        assert f"'{action}' is not taken" in refused
    by_name = {r.name: r for r in ruleset.rules}
    assert by_name["duckdb_memory_emergency"].remediation_actions == [
        "emergency_cleanup", "reduce_memory_limit", "kill_queries"
    ]
    assert by_name["cpu_usage_warning"].remediation_actions == ["monitor", "throttle_queries"]
    assert ruleset.levels["emergency"].force_cleanup is True
    assert "sms has no provider" in refused and "name the webhook channel, but it is not enabled" in refused
    names = {r.name for r in ruleset.rules}
    assert {"duckdb_memory_emergency", "system_memory_critical", "cpu_usage_warning"} <= names


def _engine(pack_dir: Path, text: str = ALERTING) -> ThresholdEngine:
    _pack_with(pack_dir, text)
    ruleset, _ = _rules(pack_dir)
    return ThresholdEngine(ruleset)


FILL = {"memory_percent": 80.0, "memory_usage_mb": 400}


def test_fires_with_the_message_filled_and_resolves_below_the_lower_mark(pack_dir):
    engine = _engine(pack_dir)
    events = engine.feed({"duckdb_memory_percent": 80.0}, FILL, 1_000)
    fired = [e for e in events if e.rule == "duckdb_memory_warning"]
    assert len(fired) == 1 and fired[0].state == "firing" and fired[0].severity == "warning"
    assert fired[0].message == "DuckDB memory usage at 80.0% of limit (400MB)"
    assert fired[0].actions_taken == ["monitor", "prepare_cleanup"] and fired[0].threshold == 75.0
    assert engine.feed({"duckdb_memory_percent": 72.0}, FILL, 2_000) == []  # under the line, above the mark
    resolved = engine.feed({"duckdb_memory_percent": 69.0}, FILL, 3_000)
    assert [(e.rule, e.state, e.id) for e in resolved if e.rule == "duckdb_memory_warning"] == [
        ("duckdb_memory_warning", "resolved", fired[0].id)
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=75.0 - HYSTERESIS_POINTS + 0.001, max_value=100.0), min_size=1, max_size=60))
def test_a_value_hovering_on_the_line_never_flaps(values):
    engine = ThresholdEngine(_HOVER_RULES)
    events = []
    for i, v in enumerate(values):
        events += [e for e in engine.feed({"duckdb_memory_percent": v}, {}, i * 1000) if e.rule == "duckdb_memory_warning"]
    assert [e.state for e in events] in ([], ["firing"])  # fires at most once, never resolves
    assert bool(events) == any(v >= 75.0 for v in values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=1, max_size=80))
def test_cooldown_stops_repeats_and_states_alternate(values):
    engine = ThresholdEngine(_HOVER_RULES)
    cooldown = _HOVER_RULES.levels["warning"].cooldown_ms
    fired_at: list[int] = []
    states: list[str] = []
    for i, v in enumerate(values):
        now = i * 60_000  # one sample a minute: a 30-minute cooldown spans 30 samples
        for e in engine.feed({"duckdb_memory_percent": v}, {}, now):
            if e.rule == "duckdb_memory_warning":
                states.append(e.state)
                if e.state == "firing":
                    fired_at.append(now)
    assert all(b - a >= cooldown for a, b in zip(fired_at, fired_at[1:]))
    assert all(s == ("firing" if i % 2 == 0 else "resolved") for i, s in enumerate(states))


def test_sustained_duration_escalation_and_acknowledgement(pack_dir):
    engine = _engine(pack_dir)
    events = [e for t in range(0, 300_001, 60_000) for e in engine.feed({"cpu_percent": 90.0}, {"cpu_percent": 90.0}, t)]
    cpu = [e for e in events if e.rule == "cpu_usage_warning"]
    crit = [e for e in events if e.rule == "cpu_usage_critical"]  # 90 is above critical's 85 too
    assert len(cpu) == 1 and cpu[0].at == 300_000  # only after 5 minutes above the level
    assert cpu[0].message == "High CPU usage detected: 90.0% for 5.0 minutes"
    assert len(crit) == 1 and crit[0].at == 300_000
    escalated = [e for e in engine.feed({"cpu_percent": 90.0}, {}, 300_000 + 3_600_000) if e.rule == "cpu_usage_warning"]
    assert escalated[0].escalated and escalated[0].severity == "critical" and escalated[0].id == cpu[0].id
    # warning auto-resolves; critical (auto_resolve: false) clears, then waits for an acknowledgement
    cleared = engine.feed({"cpu_percent": 1.0}, {}, 4_000_000)
    assert [(e.rule, e.state) for e in cleared] == [("cpu_usage_warning", "resolved")]
    assert engine.active() == [crit[0].id]
    acked = engine.acknowledge(crit[0].id, 4_001_000)
    assert acked is not None and acked.state == "resolved" and acked.id == crit[0].id
    assert engine.active() == []


_HOVER_RULES = None


def setup_module(module):  # the property tests share one rule set built from the real pack
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(Path(__file__).resolve().parents[1] / "expansion-pack", tmp / "pack")
    _pack_with(tmp / "pack", ALERTING)
    module._HOVER_RULES = _rules(tmp / "pack")[0]
    shutil.rmtree(tmp)


def test_the_setup_page_names_the_real_rules_metrics_and_placeholders(pack_dir):
    import re

    from sidecar.monitor.metrics import METRICS
    from sidecar.monitor.rules import PLACEHOLDERS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "monitoring-setup.md").read_text()
    documented = set()
    for stem, levels in re.findall(r"^\| `([a-z_]+?)_((?:info|warning|critical|emergency)(?:/[a-z]+)*)` \|", doc, re.M):
        documented |= {f"{stem}_{level}" for level in levels.split("/")}
    ruleset, _ = _rules(pack_dir)
    assert documented == {r.name for r in ruleset.rules}
    setup_section = doc[doc.index("- **Messages**") : doc.index("- **Actions**")]
    assert set(re.findall(r"`\{([a-z_]+)\}`", setup_section)) == PLACEHOLDERS
    assert {m for m in METRICS if f"`{m}`" in doc} == set(METRICS)


def test_new_rules_keep_the_state_of_rules_kept_by_name(pack_dir):
    engine = _engine(pack_dir)
    fired = engine.feed({"duckdb_memory_percent": 80.0}, FILL, 1_000)
    by_rule = {e.rule: e for e in fired}
    assert set(by_rule) == {"duckdb_memory_info", "duckdb_memory_warning"}
    kept = type(engine.rules)(
        rules=[r for r in engine.rules.rules if r.name != "duckdb_memory_info"], levels=engine.rules.levels
    )
    resolved = engine.replace_rules(kept, 2_000)
    assert [(e.id, e.state) for e in resolved] == [(by_rule["duckdb_memory_info"].id, "resolved")]
    assert engine.active() == [by_rule["duckdb_memory_warning"].id]  # still firing, not fired again
    assert engine.feed({"duckdb_memory_percent": 80.0}, FILL, 3_000) == []
