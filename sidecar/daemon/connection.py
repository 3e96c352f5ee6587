"""One client of the daemon: its socket, its session, its dispatcher, its writer.

A connection serves the same JSON-RPC lines as stdio (`sidecar/server.py`), with a session of
its own over the daemon's shared engine. When the client goes (EOF, a reset, `exit`, or too
many unread answers) its running requests are cancelled, its session closes (config watcher,
monitor, default database) and nothing of another client's is touched. Named jobs keep what
they finished (`sidecar/jobs/kept.py`), so the client can resume them with the same job_id.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from sidecar.daemon.engine_view import ConnectionEngine
from sidecar.daemon.writer import ConnectionWriter
from sidecar.protocol.calls import Registry
from sidecar.protocol.dispatcher import Dispatcher
from sidecar.protocol.framing import read_lines
from sidecar.session import Session

__all__ = ["Connection"]

log = logging.getLogger(__name__)


class Connection:
    """Serves one socket on a thread of its own; `shutdown` and `exit` end this client only."""

    def __init__(self, sock: socket.socket, number: int, daemon: Any, registry: Registry) -> None:
        self.sock = sock
        self.number = number
        self.daemon = daemon
        self.connected = time.monotonic()
        self.shutdown_grace_s = daemon.shutdown_grace_s
        self.writer = ConnectionWriter(sock, self.drop, name=str(number))
        self.engine = ConnectionEngine(daemon.engine, number)
        self.session = Session(
            self.notify,
            env=daemon.env,
            watch=daemon.watch,
            engine=self.engine,
            running_jobs=daemon.running_jobs,
            daemon=daemon,
            configs=daemon.configs,
        )
        self.session.server = self  # type: ignore[attr-defined]  # `shutdown` reaches the dispatcher
        self.dispatcher = Dispatcher(registry, self.writer, self.session)
        self._closed = threading.Event()
        self.thread = threading.Thread(target=self.serve, name=f"client-{number}", daemon=True)

    def notify(self, method: str, params: Any) -> None:
        self.writer.send({"jsonrpc": "2.0", "method": method, "params": params})

    @property
    def name(self) -> str | None:
        client = self.session.client
        return client.get("name") if isinstance(client, dict) else None

    def serve(self) -> None:
        """Serve the client's lines as the stdio sidecar does (threads taking turns to read, the
        reader of a work request running it) until it disconnects, is dropped or says `exit`."""
        try:
            with self.sock.makefile("rb") as stream:
                self.dispatcher.serve(read_lines(stream), self.session.exit_requested)
        finally:
            self.close("exit" if self.session.exit_requested.is_set() else "disconnect")

    def drop(self) -> None:
        """End the connection from any thread (a client that reads nothing): the reader wakes on EOF."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self, reason: str) -> None:
        self.dispatcher.stop_accepting()
        self.dispatcher.cancel_all(reason)

    def close(self, reason: str) -> None:
        """Cancel this client's requests, flush what answers are out, release its session."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.cancel("shutdown" if reason == "shutdown" else "cancelled")
        if not self.dispatcher.wait_idle(10.0):
            log.warning("client %d: requests still running 10 s after their cancel", self.number)
        self.dispatcher.close()
        self.writer.finish(2.0)
        try:  # the client sees its end now; releasing the session (a worker to stop) may take a while
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        except OSError:
            pass
        self.session.close()
        self.engine.close()
        log.info("client %d (%s) left: %s", self.number, self.name or "unnamed", reason)
        self.daemon.forget(self)
