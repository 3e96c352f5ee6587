"""Start a real daemon (`python -m sidecar daemon`) in a private runtime dir, and always stop it.

The runtime dir is a short directory under /tmp (a Unix socket path holds 107 bytes, more than
pytest's tmp_path leaves room for); every daemon a test starts is stopped (SIGTERM, then SIGKILL)
in teardown, so none outlives the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from sidecar.client import REPO_ROOT
from sidecar.daemon.client import SocketClient
from sidecar.daemon.paths import daemon_paths

__all__ = ["Daemon", "runtime_dir", "start_daemon", "wait_for_socket"]


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no socket at {path} within {timeout}s")
        time.sleep(0.05)


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], runtime: Path, log: Path, cwd: Path) -> None:
        self.proc = proc
        self.runtime = runtime
        self.socket = daemon_paths({"BMAD_DATA_RUNTIME_DIR": str(runtime)}, cwd=cwd).socket
        self.log = log

    def connect(self, name: str = "test", **params: Any) -> SocketClient:
        client = SocketClient(self.socket)
        client.request("initialize", {"client": {"name": name}, **params})
        return client

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_daemon(sidecar_env: dict[str, str], data_dir: Path, runtime_dir: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wait: bool = True, cwd: Path | None = None, **overrides: Any
    ) -> Daemon:
        full = dict(sidecar_env if env is None else env)
        full["BMAD_DATA_RUNTIME_DIR"] = str(runtime_dir)
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full.get("PYTHONPATH", "")]))
        full.update({k: str(v) for k, v in overrides.items()})
        log = runtime_dir / f"test-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "daemon", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full,
                cwd=cwd or data_dir,
            )
        daemon = Daemon(proc, runtime_dir, log, cwd or data_dir)
        started.append(daemon)
        if wait:
            deadline = time.monotonic() + 60
            while "ready on" not in daemon.log_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon did not start ({proc.poll()}): {daemon.log_text()}")
                time.sleep(0.05)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
