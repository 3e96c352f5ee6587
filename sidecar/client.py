"""A small synchronous Python client for a `python -m sidecar` child process.

Used by the demo, the benchmarks, the terminal harness and the tests: it talks to a real
sidecar over real pipes, exactly as the Node bridge does.
"""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import msgspec

__all__ = ["RpcError", "RpcLines", "SidecarProcess", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]


class RpcError(Exception):
    """An error answer: `code` is the JSON-RPC number, `data` the sidecar's error data."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(error.get("message", "error"))
        self.rpc_code: int = error.get("code", 0)
        self.data: dict[str, Any] = dict(error.get("data") or {})
        self.code: str = self.data.get("code", "")
        self.hint: str = self.data.get("hint", "")


class RpcLines:
    """Requests, answers and notifications over one line stream; a subclass sends and reads the lines."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[Any, Future[Any]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.notifications: list[dict[str, Any]] = []

    def send_raw(self, data: bytes) -> None:
        raise NotImplementedError

    def _deliver(self, item: Any) -> None:
        with self._cond:
            if isinstance(item, dict) and "method" in item and "id" not in item:
                self.notifications.append(item)
                self._cond.notify_all()
                return
            future = self._pending.pop(item.get("id"), None) if isinstance(item, dict) else None
            if future is None:  # an answer to a raw line, or to an id we did not send
                self.notifications.append({"unmatched": item})
                self._cond.notify_all()
                return
        if "error" in item:
            future.set_exception(RpcError(item["error"]))
        else:
            future.set_result(item.get("result"))

    def call(self, method: str, params: Any = None, *, id: Any = None) -> tuple[Any, Future[Any]]:
        """Send a request; returns (its id, a future of its result)."""
        request_id = next(self._ids) if id is None else id
        future: Future[Any] = Future()
        with self._lock:
            self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send_raw(msgspec.json.encode(message))
        return request_id, future

    def request(self, method: str, params: Any = None, *, timeout: float = 60.0) -> Any:
        """Send a request and wait for its result (raises RpcError on an error answer)."""
        return self.call(method, params)[1].result(timeout=timeout)

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send_raw(msgspec.json.encode(message))

    def cancel(self, request_id: Any) -> None:
        self.notify("$/cancelRequest", {"id": request_id})


class SidecarProcess(RpcLines):
    """Spawn a sidecar and exchange JSON-RPC lines with it."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        python: str | None = None,
        module: str = "sidecar",
    ) -> None:
        """`module` is what `python -m` runs: the sidecar, or a stand-in speaking its framing
        (`sidecar.bench.echo`, the benchmarks' echo floor)."""
        full_env = dict(os.environ if env is None else env)
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH", "")])
        )
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
        )
        RpcLines.__init__(self)
        self.raw_lines: list[bytes] = []
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- reading -------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.raw_lines.append(line)
            message = msgspec.json.decode(line)
            if isinstance(message, list):  # a batch answer: the caller sent the batch raw
                with self._cond:
                    self.notifications.append({"unmatched": message})
                    self._cond.notify_all()
                continue
            self._deliver(message)
        with self._cond:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(EOFError(f"sidecar exited with {self.proc.poll()}"))
            self._pending.clear()
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    # -- writing -------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(data if data.endswith(b"\n") else data + b"\n")
            self.proc.stdin.flush()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a notification (or unmatched answer) that satisfies `predicate`."""
        with self._cond:
            seen = 0
            ok = self._cond.wait_for(
                lambda: any(predicate(n) for n in self.notifications[seen:]) or self.proc.poll() is not None,
                timeout=timeout,
            )
            for note in self.notifications:
                if predicate(note):
                    return note
        raise TimeoutError(
            f"no matching notification within {timeout}s (ok={ok}); stderr: {list(self.stderr_tail)[-5:]}"
        )

    # -- ending --------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> int:
        """Close stdin (EOF) and wait for the process to exit; returns its exit code."""
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._release()

    def kill(self) -> None:
        """SIGKILL the sidecar (tests of crash handling) and release the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._release()

    def _release(self) -> None:
        if self.proc.poll() is None:
            return
        self._reader.join(timeout=5)
        self._err_reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass

    def __enter__(self) -> SidecarProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.close()
        except subprocess.TimeoutExpired:
            pass
