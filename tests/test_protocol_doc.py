"""docs/protocol.md stays true: its example session is replayed against a real sidecar, its
annotated JSON examples fit their schemas, and every method, error and refused statement is listed.

In the example session `"…"` matches any value, and `…` inside a longer string matches any run
of characters; everything else must be equal, member for member.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.client import SidecarProcess
from sidecar.engine import guard
from sidecar.errors import ERROR_CLASSES, AccessDenied
from sidecar.methods import load_all
from sidecar.protocol.framing import MAX_LINE_BYTES
from sidecar.schemas import SCHEMA_DIR, validate
from sidecar.server import LOG_LEVELS

DOC = Path(__file__).parents[1] / "docs" / "protocol.md"
ANY = "…"
SESSION = re.compile(r"<!-- replayed by tests/test_protocol_doc.py -->\n```jsonrpc\n(.*?)```", re.S)
ANNOTATED = re.compile(r"<!-- schema: (\S+) -->\n```json\n(.*?)```", re.S)


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def session_steps(text: str) -> list[tuple[str, list[Any]]]:
    """(request line, expected answers) for each `-->` line of the example session."""
    blocks = SESSION.findall(text)
    assert len(blocks) == 1, "docs/protocol.md must hold exactly one replayed example session"
    steps: list[tuple[str, list[str]]] = []
    for line in blocks[0].splitlines():
        if line.startswith("--> "):
            steps.append((line[4:], []))
        elif line.startswith("<-- "):
            assert steps, "an answer before any request"
            steps[-1][1].append(line[4:])
        elif line.strip():
            assert steps and steps[-1][1], f"a request must be one line; stray continuation: {line!r}"
            steps[-1][1][-1] += "\n" + line
    return [(request, [json.loads(answer) for answer in answers]) for request, answers in steps]


def mismatches(expected: Any, actual: Any, at: str = "$") -> list[str]:
    """Where `actual` differs from the documented `expected`, placeholders allowed."""
    if expected == ANY:
        return []
    if isinstance(expected, str) and ANY in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split(ANY))
        if isinstance(actual, str) and re.fullmatch(pattern, actual, re.S):
            return []
        return [f"{at}: {actual!r} does not match {expected!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        if set(expected) != set(actual):
            out.append(f"{at}: members differ: documented {sorted(expected)}, got {sorted(actual)}")
        for key in expected.keys() & actual.keys():
            out += mismatches(expected[key], actual[key], f"{at}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{at}: documented {len(expected)} items, got {len(actual)}: {actual!r}"[:400]]
        return [m for i, (e, a) in enumerate(zip(expected, actual)) for m in mismatches(e, a, f"{at}[{i}]")]
    if expected == actual and type(expected) is type(actual):
        return []
    return [f"{at}: documented {expected!r}, got {actual!r}"[:400]]


def schema(rel: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / rel).read_text(encoding="utf-8"))


def answers(sc: SidecarProcess) -> list[Any]:
    return [n["unmatched"] for n in sc.notifications if "unmatched" in n]


# -- the matcher cannot pass vacuously ----------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ({"row_count": 1}, {"rowcount": 1}),
        ({"row_count": 1}, {"row_count": 1, "extra": 2}),
        ({"row_count": 1}, {"row_count": 2}),
        ({"row_count": 1}, {"row_count": 1.0}),
        ({"ok": False}, {"ok": 0}),
        ({"rows": [[1], [2]]}, {"rows": [[1]]}),
        ({"message": "not valid JSON: …"}, {"message": "invalid JSON: x"}),
        ({"message": "not valid JSON: …"}, {"message": 5}),
        ({"settings": ANY}, {}),
    ],
)
def test_the_matcher_catches_drift(expected: Any, actual: Any) -> None:
    assert mismatches(expected, actual)


def test_the_matcher_allows_placeholders() -> None:
    documented = {"a": ANY, "b": "v…s", "c": [1, ANY]}
    assert mismatches(documented, {"a": {"x": [1]}, "b": "v1.2s", "c": [1, None]}) == []


# -- the example session, replayed --------------------------------------------------------


def test_the_example_session_covers_what_it_promises() -> None:
    steps = session_steps(doc())
    requests = [json.loads(r) if r.startswith("{") else None for r, _ in steps]
    methods = [r.get("method") for r in requests if r]
    assert methods[0] == "initialize" and "query.run" in methods and methods[-2:] == ["shutdown", "exit"]
    codes = [a["error"]["data"]["code"] for _, expected in steps for a in expected if "error" in a]
    assert {"INVALID_PARAMS", "PARSE_ERROR", "SQL_ERROR"} <= set(codes)


def test_the_example_session_replays_against_a_real_sidecar(start_sidecar: Any) -> None:
    sc: SidecarProcess = start_sidecar()
    index = schema("index.json")["methods"]
    expected_total = 0
    for request, expected in session_steps(doc()):
        sc.send_raw(request.encode("utf-8"))
        expected_total += len(expected)
        deadline = time.monotonic() + 30
        while len(answers(sc)) < expected_total and time.monotonic() < deadline:
            time.sleep(0.01)
        got = answers(sc)[expected_total - len(expected) : expected_total]
        assert len(got) == len(expected), f"{request}: expected {len(expected)} answer(s), got {got}"
        for documented, actual in zip(expected, got):
            problems = mismatches(documented, actual)
            drift = "\n".join(problems)
            assert not problems, f"docs/protocol.md drifted from the sidecar at {request}:\n{drift}"
        message = json.loads(request) if request.startswith("{") else None
        if message and message.get("method") in index:
            params_ok = not validate(message.get("params", {}), schema(index[message["method"]]["params"]))
            refused = any(a.get("error", {}).get("code") == -32602 for a in got)
            assert params_ok != refused, f"the params schema and the sidecar disagree about {request}"
            for actual in got:
                rel = index[message["method"]]["result"] if "result" in actual else "protocol/error.json"
                assert validate(actual.get("result", actual.get("error")), schema(rel), closed=True) == []
    assert sc.proc.wait(timeout=30) == 0, "the session ends with exit: the sidecar must stop with status 0"
    time.sleep(0.1)
    assert len(answers(sc)) == expected_total, f"undocumented answers: {answers(sc)[expected_total:]}"


# -- annotated examples, lists and tables -------------------------------------------------


def test_annotated_json_examples_fit_their_schemas() -> None:
    examples = ANNOTATED.findall(doc())
    assert len(examples) >= 4
    for rel, body in examples:
        errors = validate(json.loads(body), schema(rel), closed=True)
        assert not errors, f"the example for schemas/{rel} does not fit it: {errors}"


def test_every_method_is_documented_with_links_to_its_schemas() -> None:
    text = doc()
    for name in load_all().methods:
        assert f"### `{name}`" in text, f"method {name} has no section in docs/protocol.md"
        for kind in ("params", "result"):
            assert f"(../schemas/methods/{name}.{kind}.json)" in text, f"{name} {kind} schema not linked"
    for link in re.findall(r"\]\((\.\./schemas/[^)]+)\)", text):
        assert (DOC.parent / link).resolve().is_file(), f"broken schema link {link}"


def test_every_error_class_is_in_the_table() -> None:
    text = doc()
    for cls in ERROR_CLASSES:
        row = rf"^\| {cls.rpc_code} \| `{cls.code}` \| {'yes' if cls.retryable else 'no'} \| "
        assert re.search(row, text, re.M), f"no error table row for {cls.__name__} ({cls.rpc_code})"


def _refused_rows(text: str) -> list[tuple[str | None, list[str]]]:
    table = text[text.index("| statement type | examples | why refused |") :].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        kind = None if cells[0] == "(none)" else cells[0].strip("`")
        rows.append((kind, re.findall(r"`([^`]+)`", cells[1])))
    return rows


def test_the_refused_statement_table_matches_the_guard() -> None:
    text = doc()
    rows = _refused_rows(text)
    assert {kind for kind, _ in rows if kind} == set(guard._REFUSED) | {"PRAGMA"}
    con = duckdb.connect()
    try:
        for kind, examples in rows:
            for sql in examples:
                with pytest.raises(AccessDenied) as err:
                    guard.checked_statements(con, sql)
                assert err.value.details.get("statement_type") == kind, sql
        guard.checked_statements(con, "SET VARIABLE x = 1")
        pragma_row = next(line for line in text.splitlines() if line.startswith("| `PRAGMA` |"))
        allowed = set(re.findall(r"`([a-z_]+)`", pragma_row.split("allowed:", 1)[1]))
        assert allowed == set(guard.SAFE_PRAGMAS)
    finally:
        con.close()


def test_transport_figures_match_the_code() -> None:
    text = doc()
    assert MAX_LINE_BYTES == 16 * 1024 * 1024 and "16 MiB" in text
    assert f"--log-level {'|'.join(LOG_LEVELS)}" in text
