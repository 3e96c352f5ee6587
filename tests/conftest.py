"""Fixtures that start a real `python -m sidecar` over real pipes, confined to tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import pytest

from sidecar.client import REPO_ROOT, SidecarProcess

PACK = REPO_ROOT / "expansion-pack"

# A `bmad-data` command a test runs uses a private sidecar, never a shared daemon that could outlive
# the run; tests/test_daemon.py starts its daemons explicitly, each in a runtime dir of its own.
os.environ.setdefault("BMAD_DATA_NO_DAEMON", "1")

THOROUGH = os.environ.get("BMAD_DATA_TEST_THOROUGH") == "1"
"""Set by scripts/test-slow.sh: the heaviest property tests draw their full number of examples."""


def examples(full: int) -> int:
    """A heavy property test's example count: `full` in the thorough run, a third of it in CI's."""
    return full if THOROUGH else max(20, full // 3)


@pytest.fixture(autouse=True)
def fresh_default_duckdb_connection() -> None:
    """Each test gets its own `duckdb.sql`/`duckdb.execute` connection: in DuckDB 2.x a result left
    unfinished (a `fetchone()`) blocks every later use of the same connection, in any later test."""
    duckdb.set_default_connection(duckdb.connect())


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    """A private copy of the repo's expansion pack, safe to edit."""
    target = tmp_path / "pack"
    shutil.copytree(PACK, target)
    return target


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The one directory the sidecar under test may read and write."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def sidecar_env(tmp_path: Path, pack_dir: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_CONFIG_DIR=str(pack_dir),
        BMAD_DATA_STATE_DIR=str(tmp_path / "state"),
        BMAD_DATA_TEMP_DIRECTORY=str(tmp_path / "spill"),
        BMAD_DATA_ALLOWED_DIRECTORIES=str(data_dir),
        BMAD_DATA_LOG_LEVEL="debug",
        BMAD_DATA_NO_DAEMON="1",
    )
    return env


@pytest.fixture
def start_sidecar(sidecar_env: dict[str, str], data_dir: Path) -> Iterator[Callable[..., SidecarProcess]]:
    started: list[SidecarProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, **overrides: Any) -> SidecarProcess:
        full = dict(sidecar_env if env is None else env)
        full.update({k: str(v) for k, v in overrides.items()})
        process = SidecarProcess(env=full, args=args, cwd=data_dir)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def sidecar(start_sidecar: Callable[..., SidecarProcess]) -> Iterator[SidecarProcess]:
    process = start_sidecar()
    yield process
    if process.proc.poll() is None:
        assert process.close() == 0, list(process.stderr_tail)[-20:]
    process.kill()


def rpc_error(excinfo: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    err = excinfo.value
    return {"rpc_code": err.rpc_code, **err.data}
