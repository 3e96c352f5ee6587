"""schemas/ stays generated from the types, and real answers of a real sidecar fit it.

The validator is tested on counterexamples first, so the answer checks cannot pass vacuously.
"""

from __future__ import annotations

import copy
import doctest
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar import schemas
from sidecar.client import REPO_ROOT, RpcError, SidecarProcess
from sidecar.methods import load_all
from sidecar.schemas import SCHEMA_DIR, SchemaError, WireType, build, drifted, untyped_fields, validate, write

REGENERATE = "run python -m sidecar.schemas"

ANY_IS_RIGHT = {
    "QueryParams.params": "SQL parameter values: any JSON value",
    "QueryResult.rows": "row values: any JSON value, encoded by the rules in docs/protocol.md",
    "ErrorData.details": "differs per error; documented per error in docs/protocol.md",
    "CliOption.default": "a CLI option's default, any YAML value",
    "CliIntegration.security": "informational section of the CLI file, not applied",
    "CliIntegration.workflows": "informational section of the CLI file, not applied",
    "CliSection.patterns": "informational section of the CLI file, not applied",
    "FeatureFlagsFile.metadata": "informational section of the flags file, not applied",
    "MemoryTemplates.configuration_selection": "informational section, not applied",
    "Profile.system_requirements": "informational, not applied",
    "ResourceThresholds.monitoring_config": "informational section, not applied",
    "ResourceThresholds.alerting_rules": "walked with its lines by sidecar/monitor/rules.py (typed there)",
    "ResourceThresholds.scaling_triggers": "walked with its lines by sidecar/monitor/triggers.py (typed there)",
    "ResourceThresholds.degradation_procedures": "walked with its lines by sidecar/monitor/triggers.py (typed there)",
    "ResourceThresholds.notification_channels": "walked with its lines by sidecar/monitor/config.py",
}
ANY_SHOULD_BE_TYPED = {
    "QueryParams.settings": "the USER_KEYS settings (memory_limit, threads, ...): deserves its own Struct",
    "AnalyzeParams.settings": "the same per-request settings as query.run",
    "ConvertParams.settings": "the same per-request settings as query.run",
    "PartitionParams.settings": "the same per-request settings as query.run",
    "InitializeParams.overrides": "the same USER_KEYS settings, for the whole session",
}


def load(rel: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / rel).read_text(encoding="utf-8"))


def assert_fits(value: Any, rel: str) -> None:
    errors = validate(value, load(rel), closed=True)
    assert not errors, f"answer does not fit schemas/{rel}:\n" + "\n".join(errors)


# -- generation ---------------------------------------------------------------------------


def test_committed_schemas_equal_a_fresh_generation(tmp_path: Path) -> None:
    write(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.json")}
    committed = {p.relative_to(SCHEMA_DIR).as_posix(): p.read_text() for p in SCHEMA_DIR.rglob("*.json")}
    stale = sorted(rel for rel in fresh.keys() | committed.keys() if fresh.get(rel) != committed.get(rel))
    assert not stale, f"schemas/ drifted from the types ({stale}): {REGENERATE}"
    assert drifted(SCHEMA_DIR) == []


def test_files_are_stable_json(tmp_path: Path) -> None:
    first = build()
    assert first == build()
    for rel, text in first.items():
        assert text.endswith("}\n") and "\t" not in text, rel
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n", rel


def test_check_lists_every_drifted_file_and_exits_1(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, target)
    command = [sys.executable, "-m", "sidecar.schemas", "--check", "--out", str(target)]
    ok = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr

    edited = target / "methods" / "query.run.result.json"
    edited.write_text(edited.read_text().replace('"row_count"', '"rowcount"'))
    (target / "protocol" / "error.json").unlink()
    (target / "methods" / "query.runn.result.json").write_text("{}\n")
    bad = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert bad.returncode == 1
    assert "methods/query.run.result.json (changed)" in bad.stderr
    assert "protocol/error.json (missing)" in bad.stderr
    assert "methods/query.runn.result.json (no longer generated)" in bad.stderr
    assert REGENERATE in bad.stderr

    write(target)
    assert drifted(target) == [] and not (target / "methods" / "query.runn.result.json").exists()


def test_every_registered_method_notification_error_and_config_file_has_its_schema() -> None:
    index = load("index.json")
    methods = load_all().methods
    assert sorted(index["methods"]) == sorted(methods)
    for name, spec in methods.items():
        for kind in ("params", "result"):
            rel = index["methods"][name][kind]
            assert rel == f"methods/{name}.{kind}.json" and (SCHEMA_DIR / rel).is_file()
        params = load(f"methods/{name}.params.json")
        target = params["$defs"][params["$ref"].rsplit("/", 1)[1]] if "$ref" in params else params
        assert "progress_token" in target["properties"], name  # the dispatcher accepts it everywhere
        if spec.params is None:
            assert target["additionalProperties"] is False
            assert list(target["properties"]) == ["progress_token"]
    assert sorted(index["notifications"]) == sorted(schemas.NOTIFICATIONS)
    assert set(schemas.NOTIFICATIONS) == {
        "$/cancelRequest", "$/progress", "config/changed", "config/error", "monitor/metrics", "monitor/alert"
    }
    assert index["error"] == "protocol/error.json"
    assert len(index["config"]) == 4
    for rel in [*index["notifications"].values(), index["error"], *index["config"].values()]:
        assert (SCHEMA_DIR / rel).is_file(), rel


def test_config_file_schemas_leave_out_the_loaders_bookkeeping() -> None:
    for rel in load("index.json")["config"].values():
        schema = load(rel)
        top = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
        assert "path" not in top["properties"] and "positions" not in top["properties"], rel


def test_any_typed_fields_are_each_a_decision() -> None:
    found = set(untyped_fields())
    known = ANY_IS_RIGHT.keys() | ANY_SHOULD_BE_TYPED.keys()
    assert found == known, f"new Any-typed fields {sorted(found - known)}; typed now {sorted(known - found)}"


def test_a_wire_type_override_cannot_outlive_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    stale = WireType("QueryResult", "row_count", str, int, "pretend row_count was a string")
    monkeypatch.setattr(schemas, "WIRE_TYPES", (*schemas.WIRE_TYPES, stale))
    with pytest.raises(SchemaError, match="QueryResult.row_count is now typed"):
        build()
    unreachable = WireType("NoSuchStruct", "x", int, str, "nothing reaches it")
    monkeypatch.setattr(schemas, "WIRE_TYPES", (*schemas.WIRE_TYPES[:-1], unreachable))
    with pytest.raises(SchemaError, match="no schema reaches"):
        build()


# -- the validator on counterexamples -----------------------------------------------------

SHAPE = {
    "$ref": "#/$defs/Thing",
    "$defs": {
        "Thing": {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "kind": {"enum": ["a", "b"]},
                "pair": {
                    "type": "array",
                    "prefixItems": [{"type": "string"}, {"type": "number"}],
                    "items": False,
                },
                "maybe": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}]},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["n", "kind"],
            "additionalProperties": False,
        },
        "Inner": {"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]},
    },
}
GOOD = {"n": 3, "kind": "a", "pair": ["p", 1.5], "maybe": {"x": True}, "tags": {"k": "v"}}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n": "3"}, "$.n: expected integer"),
        ({"n": True}, "$.n: expected integer"),
        ({"n": 1.5}, "$.n: expected integer"),
        ({"n": -1}, "below the minimum"),
        ({"kind": "c"}, "is not one of"),
        ({"pair": ["p", "1"]}, "$.pair[1]: expected number"),
        ({"pair": ["p", 1, 2]}, "$.pair[2]: no value is allowed"),
        ({"maybe": {"x": 1}}, "matches none of 2 alternatives"),
        ({"maybe": {}}, "missing required member(s) ['x']"),
        ({"tags": {"k": 1}}, "$.tags.k: expected string"),
        ({"extra": 1}, "unknown member 'extra'"),
        ({"n": None}, "$.n: expected integer"),
    ],
)
def test_the_validator_rejects_each_counterexample(change: dict[str, Any], expected: str) -> None:
    assert validate(GOOD, SHAPE) == []
    errors = validate({**GOOD, **change}, SHAPE)
    assert any(expected in e for e in errors), errors


def test_doctests() -> None:
    assert doctest.testmod(schemas).failed == 0


def test_the_validator_rejects_missing_members_wrong_roots_and_unknown_keywords() -> None:
    assert any("missing required member(s) ['kind']" in e for e in validate({"n": 1}, SHAPE))
    assert validate([GOOD], SHAPE) == ["$: expected object, got [" + repr(GOOD) + "]"]
    with pytest.raises(SchemaError, match="unsupported JSON Schema keyword"):
        validate(1, {"type": "integer", "multipleOf": 2})
    with pytest.raises(SchemaError, match="dangling reference"):
        validate(1, {"$ref": "#/$defs/Nope"})


def test_closed_mode_refuses_undocumented_members() -> None:
    inner = SHAPE["$defs"]["Inner"]
    assert validate({"x": True, "y": 1}, inner) == []
    assert validate({"x": True, "y": 1}, inner, closed=True) == ["$: members not in the schema: ['y']"]


def test_a_real_answer_with_a_wrong_type_or_a_renamed_field_fails() -> None:
    answer = {
        "columns": [{"name": "x", "type": "INTEGER"}], "rows": [[1]], "row_count": 1, "truncated": False,
        "stats": {"elapsed_ms": 1.5, "peak_rss_bytes": 1, "peak_buffer_bytes": 0, "peak_spill_bytes": 0,
                  "statements": 1, "settings": {"threads": "2"}},
        "output": None,
    }  # fmt: skip
    assert_fits(answer, "methods/query.run.result.json")
    schema = load("methods/query.run.result.json")
    wrong = copy.deepcopy(answer)
    wrong["stats"]["settings"]["threads"] = 2
    assert validate(wrong, schema) == ["$.stats.settings.threads: expected string, got 2"]
    renamed = copy.deepcopy(answer)
    renamed["rowcount"] = renamed.pop("row_count")
    errors = validate(renamed, schema, closed=True)
    assert "$: missing required member(s) ['row_count']" in errors
    assert "$: members not in the schema: ['rowcount']" in errors
    assert validate({**answer, "rows": "[[1]]"}, schema) != []


# -- real answers from a real sidecar -----------------------------------------------------

SLOW_SQL = "SELECT count(*) FROM range(4000000000) t(i) WHERE hash(i) % 7 = 1"
VALUES_SQL = """
SELECT 1::INTEGER AS i, 9007199254740993::BIGINT AS big, 12.30::DECIMAL(5, 2) AS dec,
       'NaN'::DOUBLE AS nan, DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 12:00:00' AS ts,
       INTERVAL 26 HOURS AS iv, '\\xAA'::BLOB AS b, [1, 2] AS l, {'a': 1} AS s, NULL AS n
"""


def test_real_answers_fit_their_schemas(start_sidecar: Any, data_dir: Path) -> None:
    sc: SidecarProcess = start_sidecar()
    init = sc.request("initialize", {"client": {"name": "schema-test", "version": "0"}})
    assert_fits(init, "methods/initialize.result.json")
    assert_fits(sc.request("system.resources"), "methods/system.resources.result.json")
    assert_fits(sc.request("config.get"), "methods/config.get.result.json")
    assert_fits(sc.request("config.validate"), "methods/config.validate.result.json")
    assert_fits(sc.request("config.reload"), "methods/config.reload.result.json")

    rows = sc.request("query.run", {"sql": VALUES_SQL})
    assert rows["rows"][0][1] == "9007199254740993" and rows["rows"][0][3] == "NaN"
    assert_fits(rows, "methods/query.run.result.json")
    truncated = sc.request("query.run", {"sql": "SELECT * FROM range(5)", "max_rows": 2})
    assert truncated["truncated"] is True
    assert_fits(truncated, "methods/query.run.result.json")

    parquet = data_dir / "small.parquet"
    written = sc.request(
        "query.run",
        {"sql": "SELECT range AS id, range * 0.5 AS x, 'n' || range AS s FROM range(1000)",
         "output": {"path": str(parquet), "format": "parquet"}},
    )  # fmt: skip
    assert written["output"]["rows"] == 1000
    assert_fits(written, "methods/query.run.result.json")
    assert_fits(sc.request("dataset.analyze", {"path": str(parquet)}), "methods/dataset.analyze.result.json")
    assert_fits(sc.request("cleanup", {"aggressive": True}), "methods/cleanup.result.json")

    with pytest.raises(RpcError):
        sc.request("query.run", {"sql": "SELECT * FROM no_such_table"})
    error_lines = [json.loads(line) for line in sc.raw_lines if b'"error"' in line]
    assert error_lines and error_lines[-1]["error"]["data"]["code"] == "SQL_ERROR"
    assert_fits(error_lines[-1]["error"], "protocol/error.json")

    progress = sc.request("query.run", {"sql": "SELECT count(*) FROM range(20000000)", "progress_token": 1})
    assert_fits(progress, "methods/query.run.result.json")
    note = sc.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["token"] == 1)
    assert_fits(note["params"], "notifications/progress.json")

    assert sc.request("shutdown") is None
    assert_fits(None, "methods/shutdown.result.json")
    assert validate(0, load("methods/shutdown.result.json")) != []


def test_cancel_and_config_notifications_fit_their_schemas(start_sidecar: Any, pack_dir: Path) -> None:
    sc: SidecarProcess = start_sidecar()
    sc.request("initialize", {})
    request_id, future = sc.call("query.run", {"sql": SLOW_SQL})
    cancel = {"id": request_id}
    assert_fits(cancel, "notifications/cancelRequest.json")
    time.sleep(0.2)
    sc.cancel(request_id)
    with pytest.raises(RpcError) as err:
        future.result(timeout=10)
    assert err.value.code == "CANCELLED"
    error = {"code": err.value.rpc_code, "message": str(err.value), "data": err.value.data}
    assert_fits(error, "protocol/error.json")

    flags = pack_dir / "config" / "feature-flags.yaml"
    original = flags.read_text()
    flags.write_text(original + "\n# touched by test_schemas\n")
    changed = sc.wait_for(lambda n: n.get("method") == "config/changed", timeout=15)
    assert_fits(changed["params"], "notifications/config.changed.json")
    flags.write_text(original + "\nfeatures: [broken\n")
    broken = sc.wait_for(lambda n: n.get("method") == "config/error", timeout=15)
    assert broken["params"]["diagnostics"], broken
    assert_fits(broken["params"], "notifications/config.error.json")
    flags.write_text(original)
