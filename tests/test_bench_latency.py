"""The latency benchmark's parts, really run: the echo floor over real pipes, and
`sidecar.bench.roundtrip --latency-only --json` against a real sidecar (a few calls: it
checks what the benchmark prints, never how fast anything is)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from sidecar.client import REPO_ROOT, SidecarProcess


def _bench_json(cwd: Path, module: str, *args: str) -> dict:
    """What `python -m module --json *args` prints, run in `cwd` with only the repo on its path."""
    out = subprocess.run(
        [sys.executable, "-m", module, "--json", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def test_the_echo_floor_answers_each_request_and_no_notification(tmp_path: Path) -> None:
    with SidecarProcess(cwd=tmp_path, module="sidecar.bench.echo") as echo:
        assert echo.request("anything", {"x": 1}) is None
        assert echo.request("query.run", {"sql": "SELECT 42"}) is None
        echo.notify("exit")  # a notification gets no answer: the next answer is the next request's
        echo.send_raw(b"not json")
        assert echo.request("again") is None
        assert echo.close() == 0
    answers = [msgspec.json.decode(line) for line in echo.raw_lines]
    assert [a.get("id") for a in answers] == [1, 2, None, 3]
    assert answers[2]["error"]["data"]["code"] == "PARSE_ERROR"


def test_roundtrip_json_names_every_call_with_its_percentiles(tmp_path: Path) -> None:
    figures = _bench_json(tmp_path, "sidecar.bench.roundtrip", "--latency-only", "--calls", "10")
    latency = figures["latency_ms"]
    assert list(latency) == ["echo", "config.get", "system.resources", "query.run SELECT 42"]
    for name, f in latency.items():
        assert f["calls"] == 10, name
        assert 0 < f["p50"] <= f["p99"] <= f["max"], name
    assert len(figures["load"]) == 3


@pytest.mark.slow
def test_the_hop_bench_times_every_layer(tmp_path: Path) -> None:
    latency = _bench_json(tmp_path, "sidecar.bench.hop", "--calls", "20")["latency_ms"]
    assert list(latency) == ["duckdb", "duckdb+bind", "engine", "worker", "echo", "config.get", "query.run"]
    assert all(f["calls"] == 20 and 0 < f["p50"] <= f["p99"] for f in latency.values())


def test_every_bench_command_in_the_latency_doc_takes_the_options_it_shows() -> None:
    """The commands docs/performance/latency.md tells a reader to run exist with those options
    (bmad_bridge/tests/latency-bench.test.js checks the Node script's)."""
    text = (REPO_ROOT / "docs" / "performance" / "latency.md").read_text()
    commands = re.findall(r"python -m (sidecar\.bench\.\w+)([^\n`]*)", text)
    assert {module for module, _ in commands} >= {"sidecar.bench.hop", "sidecar.bench.roundtrip"}
    for module, rest in commands:
        if "--" not in rest:
            continue  # named, not run with options (the echo floor reads stdin)
        helped = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
            timeout=60,
            check=True,
        ).stdout
        for option in re.findall(r"(--[a-z-]+)", rest):
            assert option in helped, f"{module} has no {option}"
