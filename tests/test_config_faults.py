"""Every pack file x every fault, through a real sidecar: a broken file is CONFIG_INVALID naming the
file (and the line where there is one), never a FEATURE_DISABLED about an undeclared flag.

A file whose absence leaves a working fallback (memory templates: only `auto`; thresholds: the
built-ins) is a warning that says so, and data methods keep serving; the two files that declare
flags (flags, CLI) have no fallback, so their absence is an error. config.yaml is not needed by the sidecar (flat packs have none), but when present it must
parse. The table below is the contract; docs/configuration.md states it for users.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from sidecar.client import REPO_ROOT, RpcError, SidecarProcess

PACK = REPO_ROOT / "expansion-pack"

FILES = {
    "flags": "config/feature-flags.yaml",
    "templates": "data/duckdb-memory-config-templates.yaml",
    "thresholds": "data/resource-thresholds-config.yaml",
    "cli": "data/duckdb-cli-integration-config.yaml",
    "manifest": "config.yaml",
}

# A value of the wrong type at a known key, and the line it is on.
WRONG_TYPE = {
    "flags": ("features:\n  duckdb_analytics:\n    enabled: sometimes\n", 3),
    "templates": ("development:\n  duckdb_config:\n    threads: many\n", 3),
    "thresholds": ("memory_thresholds:\n  duckdb_memory:\n    warning: lots\n", 3),
    "cli": ("cli_integration:\n  commands: [1, 2]\n", 2),
    "manifest": ("name: [1, 2]\nversion: 0.1.0\n", 1),
}

# (file, fault) pairs that leave the sidecar serving, with the warning's words.
SERVES = {
    ("templates", "missing"): "only the built-in `auto` profile",
    ("templates", "empty"): "only the built-in `auto` profile",
    ("thresholds", "missing"): "built-in monitoring thresholds",
    ("thresholds", "empty"): "built-in monitoring thresholds",
    ("manifest", "missing"): None,  # no diagnostic at all
}

FAULTS = ("syntax", "wrong_type", "empty", "missing", "directory", "bad_utf8", "nul_byte")


def break_file(path: Path, role: str, fault: str) -> int | None:
    """Apply the fault; returns the line a diagnostic should name (None: the file has no line)."""
    text = path.read_text()
    if fault == "syntax":
        path.write_text(text + "\nbroken: [unclosed\nnext: 1\n")
        return text.count("\n") + 3
    if fault == "wrong_type":
        body, line = WRONG_TYPE[role]
        path.write_text(body)
        return line
    if fault == "empty":
        path.write_text("")
        return None
    if fault == "missing":
        path.unlink()
        return None
    if fault == "directory":
        path.unlink()
        path.mkdir()
        return None
    if fault == "bad_utf8":
        path.write_bytes(b"# first\n# caf\xe9\n" + text.encode())
        return 2
    if fault == "nul_byte":
        path.write_bytes(b"# first\nx: \x00\n" + text.encode())
        return 2
    raise AssertionError(fault)


@pytest.fixture(scope="module")
def one_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    """One sidecar for the whole matrix; each case points it at its own broken pack via initialize."""
    root = tmp_path_factory.mktemp("faults")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_CONFIG_DIR=str(PACK),
        BMAD_DATA_STATE_DIR=str(root / "state"),
        BMAD_DATA_TEMP_DIRECTORY=str(root / "spill"),
    )
    with SidecarProcess(env=env, cwd=root) as process:
        yield process


def _query(sidecar: SidecarProcess) -> tuple[str, dict[str, Any]]:
    try:
        result = sidecar.request("query.run", {"sql": "SELECT 42 AS answer"})
    except RpcError as err:
        return err.code, err.data
    assert result["rows"] == [[42]]
    return "ok", result


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("role", list(FILES))
def test_a_broken_pack_file_is_config_invalid_at_its_line(
    one_sidecar: SidecarProcess, tmp_path: Path, role: str, fault: str
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(PACK, pack)
    path = pack / FILES[role]
    line = break_file(path, role, fault)
    init = one_sidecar.request("initialize", {"config_dir": str(pack)})
    code, answer = _query(one_sidecar)
    mine = [d for d in init["diagnostics"] if d["file"] == str(path)]
    if (role, fault) in SERVES:
        assert code == "ok", answer
        words = SERVES[(role, fault)]
        if words is None:
            assert mine == []
        else:
            (warning,) = mine
            assert warning["severity"] == "warning" and words in warning["message"]
            assert "Restore" in warning["hint"]
        return
    assert code == "CONFIG_INVALID", answer
    first = answer["details"]["diagnostics"][0]
    assert first["file"] == str(path), answer
    assert first["line"] == line, first
    assert first["hint"], first  # says what to do next
    assert str(path) in answer["message"]
    if line is not None:
        assert f"{path}:{line}" in answer["message"]


def test_the_repo_pack_serves(one_sidecar: SidecarProcess) -> None:
    """The control case of the matrix: the unbroken pack answers."""
    init = one_sidecar.request("initialize", {"config_dir": str(PACK)})
    assert [d for d in init["diagnostics"] if d["severity"] == "error"] == []
    assert _query(one_sidecar)[0] == "ok"
