"""The terminal harness: commands in, pretty answers out, errors with hints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sidecar.client import REPO_ROOT


def test_the_harness_answers_commands_and_raw_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(PYTHONPATH=str(REPO_ROOT), BMAD_DATA_STATE_DIR=str(tmp_path / "state"))
    commands = "\n".join(
        [
            "sql SELECT 42 AS answer",
            '{"jsonrpc": "2.0", "id": "raw", "method": "query.run", "params": {"sql": "SELECT 7 AS seven"}}',
            "sql SELEC 1",
            "bogus",
            "quit",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.harness"],
        input=commands,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    decoder, text, values = json.JSONDecoder(), done.stdout, []
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        value, index = decoder.raw_decode(text, index)
        values.append(value)
    assert values[0]["rows"] == [[42]]
    assert values[1]["id"] == "raw" and values[1]["result"]["rows"] == [[7]]
    assert values[2]["error"] == "SQL_ERROR" and values[2]["hint"]
    assert "unknown command 'bogus'" in done.stderr
