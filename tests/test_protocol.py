"""The transport over real pipes: framing, bad input, concurrency, cancellation, progress."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import msgspec
import pytest

from sidecar.client import REPO_ROOT, RpcError, SidecarProcess
from sidecar.protocol.checks import MAX_NESTING
from sidecar.protocol.framing import MessageWriter

SLOW_SQL = "SELECT count(*) FROM range(4000000000) t(i) WHERE hash(i) % 7 = 1"


def answer(sc: SidecarProcess, timeout: float = 10.0) -> dict:
    """The next answer to a raw line (one we sent without registering an id), in order."""
    seen = getattr(sc, "answers_read", 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unmatched = [n for n in sc.notifications if "unmatched" in n]
        if len(unmatched) > seen:
            sc.answers_read = seen + 1  # type: ignore[attr-defined]
            return unmatched[seen]["unmatched"]
        time.sleep(0.01)
    raise TimeoutError(f"no answer; stderr: {list(sc.stderr_tail)[-5:]}")


def assert_alive(sc: SidecarProcess) -> None:
    assert sc.request("query.run", {"sql": "SELECT 42 AS answer"})["rows"] == [[42]]


@pytest.mark.parametrize(
    ("line", "rpc_code", "code"),
    [
        (b"this is not json", -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "query.run"', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":"\xff\xfe"}', -32700, "PARSE_ERROR"),
        (b"42", -32600, "INVALID_REQUEST"),
        (b"null", -32600, "INVALID_REQUEST"),
        (b'"query.run"', -32600, "INVALID_REQUEST"),
        (b'{"id": 7, "method": "system.resources"}', -32600, "INVALID_REQUEST"),
        (b'{"jsonrpc": "2.0", "id": 7}', -32600, "INVALID_REQUEST"),
        (b'{"jsonrpc": "2.0", "id": 7, "method": 12}', -32600, "INVALID_REQUEST"),
        (b'{"jsonrpc": "2.0", "id": 1.5, "method": "system.resources"}', -32600, "INVALID_REQUEST"),
        (b'{"jsonrpc": "2.0", "id": true, "method": "system.resources"}', -32600, "INVALID_REQUEST"),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.runn", "params": {"sql": "SELECT 1"}}',
            -32601,
            "METHOD_NOT_FOUND",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": 1}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {}}', -32602, "INVALID_PARAMS"),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": ["SELECT 1"]}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT 1", "max_rows": -1}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sqll": "SELECT 1"}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT 1", "progress_token": [1]}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "system.resources", "params": {"x": 1}}',
            -32602,
            "INVALID_PARAMS",
        ),
        # what used to end the sidecar, or could: each is one line's error now (issue 10)
        (b"[" * 100_000, -32700, "PARSE_ERROR"),
        (b'{"a":' * 100_000, -32700, "PARSE_ERROR"),
        (b"[" * 5_000 + b"]" * 5_000, -32700, "PARSE_ERROR"),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT 1", "params": '
            + b"[" * 3_000
            + b"]" * 3_000
            + b"}}",
            -32700,
            "PARSE_ERROR",
        ),
        (b'{"jsonrpc": "2.0", "id": 1e400, "method": "config.get"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": ' + b"9" * 5_000 + b', "method": "config.get"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": NaN, "method": "config.get"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": -Infinity, "method": "config.get"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "config.get\\ud800"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "\xed\xa0\x80"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "config.get\x00"}', -32700, "PARSE_ERROR"),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "config.get\\u0000"}', -32601, "METHOD_NOT_FOUND"),
        (b'{"jsonrpc": "2.0", "id": [7], "method": "config.get"}', -32600, "INVALID_REQUEST"),
        (b'{"jsonrpc": "2.0", "id": {"a": 7}, "method": "config.get"}', -32600, "INVALID_REQUEST"),
        (b"[" + b",".join([b"1"] * 10_001) + b"]", -32600, "INVALID_REQUEST"),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "$/cancelRequest", "params": {"id": [1]}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "$/cancelRequest", "params": {"id": {"a": 1}}}',
            -32602,
            "INVALID_PARAMS",
        ),
        # found by the fuzzer (tests/test_fuzz_protocol.py): each was INTERNAL, with a traceback
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT ?", "params": [18446744073709551616]}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT 1", "timeout_ms": -9223372036854775809}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "dataset.analyze", "params": {"path": "x.csv", "sample_rows": 1' + b"0" * 30 + b"}}",
            -32602,
            "INVALID_PARAMS",
        ),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "config.validate", "params": {"path": "a\\u0000b"}}', -32602, "INVALID_PARAMS"),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "dataset.analyze", "params": {"path": "\\u0000"}}', -32602, "INVALID_PARAMS"),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT 1", "database": "db\\u0000"}}',
            -32602,
            "INVALID_PARAMS",
        ),
        (
            b'{"jsonrpc": "2.0", "id": 7, "method": "query.run", "params": {"sql": "SELECT 1", "params": '
            + b"[" * 900 + b"]" * 900 + b"}}",
            -32602,
            "INVALID_PARAMS",
        ),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "config.validate", "params": {"path": "' + b"a" * 5000 + b'"}}', -32004, "INPUT_ERROR"),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {"config_dir": "' + b"a" * 5000 + b'"}}', -32004, "INPUT_ERROR"),
    ],
    ids=lambda v: v[:60].decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
)
def test_every_bad_line_gets_its_error_and_the_next_request_is_served(sidecar, line, rpc_code, code):
    sidecar.send_raw(line)
    reply = answer(sidecar)
    assert reply["error"]["code"] == rpc_code
    assert reply["error"]["data"]["code"] == code
    assert reply["error"]["data"]["hint"]
    assert_alive(sidecar)


def test_unknown_names_suggest_the_closest(sidecar):
    with pytest.raises(RpcError) as err:
        sidecar.request("query.runn", {"sql": "SELECT 1"})
    assert "did you mean 'query.run'" in str(err.value)
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sqll": "SELECT 1"})
    assert "did you mean 'sql'" in str(err.value)
    assert "sql" in err.value.hint


def test_a_50_mb_line_is_refused_without_taking_the_sidecar_down(sidecar):
    big = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "query.run", "params": {"sql": "SELECT \''
        + b"x" * (50 * 1024 * 1024)
        + b"'\"}}"
    )
    sidecar.send_raw(big)
    reply = answer(sidecar, timeout=60)
    assert reply["error"]["code"] == -32700
    assert "exceeds the limit" in reply["error"]["message"]
    assert_alive(sidecar)


def test_batches(sidecar):
    sidecar.send_raw(
        b'[{"jsonrpc": "2.0", "id": "a", "method": "query.run", "params": {"sql": "SELECT 1 AS x"}},'
        b' {"jsonrpc": "2.0", "method": "system.resources"},'
        b" 5,"
        b' {"jsonrpc": "2.0", "id": "c", "method": "nope"}]'
    )
    reply = answer(sidecar)
    assert isinstance(reply, list) and len(reply) == 3  # the notification gets no answer
    by_id = {r.get("id"): r for r in reply}
    assert by_id["a"]["result"]["rows"] == [[1]]
    assert by_id["c"]["error"]["code"] == -32601
    assert by_id[None]["error"]["code"] == -32600
    sidecar.send_raw(b"[]")
    assert answer(sidecar)["error"]["code"] == -32600


def test_notifications_get_no_answer(sidecar):
    sidecar.send_raw(
        b'{"jsonrpc": "2.0", "method": "query.run", "params": {"sql": "CREATE TABLE n AS SELECT 1 AS x"}}'
    )
    sidecar.send_raw(b'{"jsonrpc": "2.0", "method": "$/someOptionalThing"}')
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the notification's work runs, silently
        try:
            assert sidecar.request("query.run", {"sql": "SELECT x FROM n"})["rows"] == [[1]]
            break
        except RpcError:
            time.sleep(0.05)
    assert not [n for n in sidecar.notifications if "unmatched" in n]


def test_stdout_carries_only_protocol_messages(sidecar):
    sidecar.request("query.run", {"sql": "SELECT 1"})
    sidecar.send_raw(b"garbage")
    answer(sidecar)
    sidecar.close()
    assert sidecar.raw_lines
    for line in sidecar.raw_lines:
        message = msgspec.json.decode(line)
        assert isinstance(message, (dict, list))
    assert any("ready" in line for line in sidecar.stderr_tail)


def test_a_long_query_never_delays_system_resources(sidecar):
    """Inline methods are answered while a query runs, never queued behind it. (No wall-clock bound
    here: on a loaded machine system.resources itself can take a second; the answer arriving
    while the query still runs is what shows it was not queued.)"""
    request_id, slow = sidecar.call("query.run", {"sql": SLOW_SQL})
    try:
        time.sleep(0.3)
        resources = sidecar.request("system.resources", timeout=5)
        assert resources["total_memory_bytes"] > 0
        assert not slow.done(), "the slow query should still be running"
        assert sidecar.request("config.get", timeout=5)["ok"] is True
        assert not slow.done()
    finally:  # a failed check must not leave the query running into the fixture's EOF drain
        sidecar.cancel(request_id)
    with pytest.raises(RpcError):
        slow.result(timeout=10)


def test_cancel_interrupts_within_a_second_and_progress_flows(sidecar):
    request_id, future = sidecar.call("query.run", {"sql": SLOW_SQL, "progress_token": "tok"})
    note = sidecar.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["token"] == "tok")
    value = note["params"]["value"]
    assert set(value) == {"phase", "percent", "elapsed_ms", "rss_bytes", "buffer_bytes", "spill_bytes"}
    assert value["percent"] is None or 0 <= value["percent"] <= 100
    assert value["rss_bytes"] > 0
    time.sleep(0.5)
    sent = time.monotonic()
    sidecar.cancel(request_id)
    with pytest.raises(RpcError) as err:
        future.result(timeout=5)
    assert time.monotonic() - sent < 1.0
    assert err.value.rpc_code == -32800
    assert err.value.code == "CANCELLED"
    progress = [n for n in sidecar.notifications if n.get("method") == "$/progress"]
    assert len(progress) >= 2  # a few a second
    assert_alive(sidecar)


def test_timeout_stops_the_query_and_says_so(sidecar):
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": SLOW_SQL, "timeout_ms": 300}, timeout=10)
    assert err.value.code == "TIMEOUT"
    assert err.value.data["retryable"] is True
    assert_alive(sidecar)


def test_duplicate_ids_in_flight_are_refused(sidecar):
    line = (
        b'{"jsonrpc": "2.0", "id": "same", "method": "query.run", "params": {"sql": "%s"}}'
        % SLOW_SQL.encode()
    )
    sidecar.send_raw(line)
    time.sleep(0.2)
    sidecar.send_raw(b'{"jsonrpc": "2.0", "id": "same", "method": "system.resources"}')
    reply = answer(sidecar)
    assert reply["id"] == "same" and reply["error"]["code"] == -32600
    assert "still in flight" in reply["error"]["message"]
    sidecar.cancel("same")
    assert answer(sidecar)["error"]["code"] == -32800


def test_shutdown_then_exit(sidecar):
    assert sidecar.request("shutdown") is None
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT 1"})
    assert err.value.code == "INVALID_REQUEST"
    sidecar.notify("exit")
    assert sidecar.proc.wait(timeout=10) == 0


def test_eof_lets_running_work_finish_then_exits_clean(start_sidecar, tmp_path):
    sc = start_sidecar()
    _, future = sc.call("query.run", {"sql": "SELECT count(*) AS n FROM range(200000000)"})
    assert sc.close() == 0
    assert future.result(timeout=1)["rows"] == [[200000000]]
    spill = tmp_path / "spill"
    assert not spill.exists() or not any(spill.iterdir())


def test_cancel_and_exit_sent_as_requests_are_answered(sidecar):
    assert sidecar.request("$/cancelRequest", {"id": "nothing-running"}) is None
    assert_alive(sidecar)
    assert sidecar.request("exit") is None
    assert sidecar.proc.wait(timeout=10) == 0


def test_a_line_nested_100000_deep_leaves_running_work_running(sidecar):
    """The line that used to end the sidecar (RecursionError in the decoder) and every job with it."""
    request_id, slow = sidecar.call("query.run", {"sql": SLOW_SQL})
    time.sleep(0.3)
    sidecar.send_raw(b"[" * 100_000)
    reply = answer(sidecar)
    assert reply["id"] is None and reply["error"]["data"]["code"] == "PARSE_ERROR"
    assert "nested" in reply["error"]["message"]
    assert not slow.done(), "the running query must survive the bad line"
    sidecar.cancel(request_id)
    with pytest.raises(RpcError) as err:
        slow.result(timeout=10)
    assert err.value.code == "CANCELLED"
    assert_alive(sidecar)


def test_cancel_and_exit_in_a_batch_answer_inside_the_batch(sidecar):
    sidecar.send_raw(
        b'[{"jsonrpc": "2.0", "id": "c", "method": "$/cancelRequest", "params": {"id": "none"}},'
        b' {"jsonrpc": "2.0", "id": "bad", "method": "$/cancelRequest", "params": {"id": 1.5}},'
        b' {"jsonrpc": "2.0", "id": "r", "method": "config.get"}]'
    )
    reply = answer(sidecar)
    assert [r["id"] for r in reply] == ["c", "bad", "r"]
    assert reply[0]["result"] is None
    assert reply[1]["error"]["data"]["code"] == "INVALID_PARAMS"
    assert reply[2]["result"]["ok"] is True
    assert not [n for n in sidecar.notifications if "unmatched" in n][1:]  # nothing outside the batch


def test_an_answer_holding_text_that_is_not_unicode_still_answers_its_id():
    """A string with a lone surrogate (a non-UTF-8 file name read by Python) cannot be UTF-8:
    the writer escapes it rather than losing the answer; an answer that cannot be encoded at
    all becomes INTERNAL for its id. Over a real pipe."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb", buffering=0) as out, os.fdopen(read_fd, "rb") as inp:
        writer = MessageWriter(out)
        assert writer.send({"jsonrpc": "2.0", "id": 1, "result": {"path": "caf\udce9.csv"}})
        assert writer.send([{"jsonrpc": "2.0", "id": 2, "result": "\ud800"}])
        loop: list[Any] = []
        loop.append(loop)
        assert writer.send({"jsonrpc": "2.0", "id": 3, "result": loop})
        assert not writer.send({"jsonrpc": "2.0", "method": "$/progress", "params": loop})
        out.close()
        lines = [msgspec.json.decode(line) for line in inp]
    assert lines[0] == {"jsonrpc": "2.0", "id": 1, "result": {"path": "caf\\udce9.csv"}}
    assert lines[1] == [{"jsonrpc": "2.0", "id": 2, "result": "\\ud800"}]
    assert lines[2]["id"] == 3 and lines[2]["error"]["data"]["code"] == "INTERNAL"
    assert len(lines) == 3


def test_nul_in_sql_and_bound_values_and_ids_of_every_valid_shape_are_served(sidecar):
    """NUL is refused in names and paths only; DuckDB takes it whole in SQL text and bound values."""
    result = sidecar.request("query.run", {"sql": "SELECT ? AS v -- \u0000", "params": ["a\u0000b"]})
    assert result["rows"] == [["a\u0000b"]]
    for id in (0, "", -1, 2**63 - 1, 10**30, "\u0000\U0001f600"):
        sidecar.send_raw(msgspec.json.encode({"jsonrpc": "2.0", "id": id, "method": "config.get"}))
        reply = answer(sidecar)
        assert reply["id"] == id and reply["result"]["ok"] is True


def test_params_nested_past_the_limit_are_invalid_params_not_internal(sidecar):
    """The worker's DuckDB copies a bound value recursively: 500 levels once answered INTERNAL."""
    deep: object = 1
    for _ in range(500):
        deep = [deep]
    with pytest.raises(RpcError) as err:
        sidecar.request("query.run", {"sql": "SELECT ?", "params": [deep]})
    assert err.value.code == "INVALID_PARAMS" and f"deeper than {MAX_NESTING} levels" in str(err.value)
    assert "JSON" in err.value.hint
    nested: object = 7
    for _ in range(MAX_NESTING - 2):  # within the limit, with the envelope's `params` list
        nested = [nested]
    result = sidecar.request("query.run", {"sql": "SELECT ? IS NOT NULL AS ok", "params": [nested]})
    assert result["rows"] == [[True]]


def malformed_input_rows() -> list[tuple[str, bytes, str, object]]:
    """(input, line, data.code, id) for each row of docs/protocol.md's "Malformed input" table.

    An example cell is code spans, each optionally followed by `×N` (repeat N times), joined;
    `\\xHH` in a span is that byte.
    """
    text = (REPO_ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text.split("<!-- replayed by tests/test_protocol.py -->\n", 1)[1].split("\n\n", 1)[0]
    rows = []
    for row in table.splitlines()[2:]:
        what, example, code, id = [cell.strip() for cell in row.strip("|").split(" | ")]
        line = b""
        for span, count in re.findall(r"`([^`]*)`(?:×(\d+))?", example):
            piece = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), span.encode())
            line += piece * int(count or 1)
        rows.append((what, line, code.strip("`"), None if id == "null" else int(id)))
    return rows


def test_the_malformed_input_table_is_true(sidecar):
    rows = malformed_input_rows()
    assert len(rows) >= 19
    for what, line, code, id in rows:
        sidecar.send_raw(line)
        reply = answer(sidecar, timeout=60)
        assert (reply["error"]["data"]["code"], reply["id"]) == (code, id), (what, reply["error"]["message"])
        assert reply["error"]["data"]["hint"]
        assert sidecar.request("config.get", timeout=10)["ok"] is True, what
