"""The daemon: one engine, many clients, on a Unix socket only this user can reach.

`Daemon.serve` claims the lock file (a second daemon for the same socket refuses to start),
replaces a stale socket a dead daemon left, binds the socket 0600 in a 0700 directory, and
accepts connections. Each peer's uid is checked with SO_PEERCRED before a byte of it is read.
The engine (supervisor, worker pool, admission, machine budget) is built once from the daemon's
own config and shared by every connection's session, so admission sees every client's jobs.
It stops on `daemon.stop`, SIGTERM/SIGINT, or after `idle_timeout_s` with no client and no job;
stopping cancels what runs, stops the workers and removes spill files, the socket and its pid.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import struct
import threading
import time
from typing import Mapping

from sidecar import __version__
from sidecar.daemon.configs import SharedConfigs
from sidecar.daemon.connection import Connection
from sidecar.daemon.ledger import MachineLedger, ledger_path
from sidecar.daemon.paths import DaemonPaths, ensure_private_dir
from sidecar.errors import InputError
from sidecar.methods import load_all
from sidecar.methods.daemon import DaemonBudget, DaemonClient, DaemonInfo, DaemonStatus, StopResult
from sidecar.session import Session

__all__ = ["Daemon", "DaemonRunning", "DEFAULT_IDLE_TIMEOUT_S", "peer_uid"]

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S = 900.0
TICK_S = 0.2


class DaemonRunning(InputError):
    """Another daemon holds this socket's lock."""

    def __init__(self, paths: DaemonPaths, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"a daemon ({who}) already serves {paths.socket}",
            hint="Use it (bmad-data connects to it), or stop it first: `bmad-data daemon stop`.",
            details={"pid": pid, "socket": str(paths.socket)},
        )
        self.pid = pid


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED: pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class Daemon:
    def __init__(
        self,
        paths: DaemonPaths,
        *,
        env: Mapping[str, str] | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        watch: bool = True,
        shutdown_grace_s: float = 30.0,
    ) -> None:
        self.paths = paths
        self.env = dict(os.environ if env is None else env)
        self.idle_timeout_s = idle_timeout_s
        self.watch = watch
        self.shutdown_grace_s = shutdown_grace_s
        self.started_ms = int(time.time() * 1000)
        self.running_jobs: dict[str, object] = {}
        self.connections: dict[int, Connection] = {}
        self.configs = SharedConfigs(watch=watch)
        self.stop_requested = threading.Event()
        self.stop_when_idle = False
        self._lock = threading.Lock()
        self._numbers = iter(range(1, 1 << 62))
        self._lock_fd: int | None = None
        self._listener: socket.socket | None = None
        self._session: Session | None = None
        self.ledger: MachineLedger | None = None
        """Shared with the user's other daemons: one machine budget for all (sidecar/daemon/ledger.py)."""

    # -- what methods ask ----------------------------------------------------------------

    @property
    def engine(self) -> object:
        assert self._session is not None, "the engine exists once serve() has started"
        return self._session.engine

    def info(self) -> DaemonInfo:
        with self._lock:
            clients = len(self.connections)
        return DaemonInfo(os.getpid(), self.started_ms, clients, str(self.paths.socket))

    def status(self) -> DaemonStatus:
        assert self._session is not None
        admission = self._session.engine.supervisor.admission
        now = time.monotonic()
        with self._lock:
            connections = list(self.connections.values())
        clients = [
            DaemonClient(
                c.number,
                c.name,
                int((now - c.connected) * 1000),
                len(c.dispatcher.inflight),
                str(c.session.config_dir),
            )
            for c in connections
        ]
        return DaemonStatus(
            pid=os.getpid(),
            version=__version__,
            socket=str(self.paths.socket),
            started_ms=self.started_ms,
            uptime_ms=int(time.time() * 1000) - self.started_ms,
            idle_timeout_s=self.idle_timeout_s,
            clients=clients,
            jobs=sorted(self.running_jobs),
            budget=DaemonBudget(
                admission.machine_budget,
                admission.reserved,
                len(admission.running),
                admission.waiting(),
                self.ledger.others() if self.ledger is not None else 0,
            ),
        )

    def request_stop(self, *, when_idle: bool) -> StopResult:
        if when_idle:
            self.stop_when_idle = True
        else:
            self.stop_requested.set()
        return StopResult(os.getpid(), not when_idle)

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self.connections.pop(connection.number, None)

    # -- serving -------------------------------------------------------------------------

    def claim(self) -> None:
        """Take the lock and the socket path, or raise DaemonRunning; a stale socket is replaced."""
        ensure_private_dir(self.paths.directory)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DaemonRunning(self.paths, int(text) if text.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        if self.paths.socket.exists() or self.paths.socket.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.paths.socket))
            except OSError:  # refused or not a socket: what a dead daemon left
                log.info("removing the stale socket %s", self.paths.socket)
                self.paths.socket.unlink()
            else:
                probe.close()
                self._release_lock()
                raise DaemonRunning(self.paths, None)
            finally:
                probe.close()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.paths.socket))
        finally:
            os.umask(old)
        os.chmod(self.paths.socket, 0o600)
        listener.listen(64)
        listener.settimeout(TICK_S)
        self._listener = listener

    def serve(self, *, ready: threading.Event | None = None) -> int:
        """Serve until stopped; the socket exists (and `ready` is set) once clients may connect."""
        if self._listener is None:
            self.claim()
        assert self._listener is not None
        registry = load_all()
        try:
            self._session = Session(
                lambda method, params: None, env=self.env, watch=False, daemon=self, configs=self.configs
            )
            self.ledger = MachineLedger(ledger_path(self.env))
            self._session.engine.supervisor.admission.ledger = self.ledger
            self._session.engine.supervisor.pool.keep_returned = True
            freed, removed = self._session.engine.cleanup(aggressive=False)
            if removed:
                log.info("removed %d file(s), %d bytes, left behind by earlier runs", removed, freed)
            log.info("bmad-data daemon %s ready on %s (pid %d)", __version__, self.paths.socket, os.getpid())
            if ready is not None:
                ready.set()
            self._accept(registry)
        except (KeyboardInterrupt, SystemExit):
            log.info("stopping on a signal")
        finally:
            self.stop()
        return 0

    def _accept(self, registry: object) -> None:
        assert self._listener is not None
        idle_since = time.monotonic()
        while not self.stop_requested.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                sock = None
            if sock is not None:
                self._admit(sock, registry)
            if self._busy():
                idle_since = time.monotonic()
            elif self.stop_when_idle or time.monotonic() - idle_since >= self.idle_timeout_s:
                log.info("idle (no client, no job) for %.1f s; stopping", time.monotonic() - idle_since)
                return

    def _busy(self) -> bool:
        assert self._session is not None
        with self._lock:
            if self.connections:
                return True
        return bool(self._session.engine.supervisor.admission.running)

    def _admit(self, sock: socket.socket, registry: object) -> None:
        sock.settimeout(None)
        try:
            uid = peer_uid(sock)
        except OSError as exc:
            log.warning("refused a connection whose peer could not be checked: %s", exc)
            sock.close()
            return
        if uid != os.getuid():
            log.warning("refused a connection from uid %d (this daemon serves uid %d only)", uid, os.getuid())
            sock.close()
            return
        number = next(self._numbers)
        try:
            connection = Connection(sock, number, self, registry)  # type: ignore[arg-type]
        except Exception:  # a session that cannot start: that client goes, the daemon serves on
            log.exception("could not start a session for client %d", number)
            sock.close()
            return
        with self._lock:
            self.connections[number] = connection
        connection.thread.start()

    def stop(self) -> None:
        """Cancel every client's requests, close them, stop the workers, remove the socket and lock."""
        self.stop_requested.set()
        if self._listener is not None:
            self._listener.close()
            self.paths.socket.unlink(missing_ok=True)
            self._listener = None
        with self._lock:
            connections = list(self.connections.values())
        for connection in connections:
            connection.cancel("shutdown")
            connection.drop()
        for connection in connections:
            connection.thread.join(15.0)
        self.configs.close()
        if self._session is not None:
            self._session.close()
            self._session.engine.cleanup(aggressive=True)
            self._session = None
        if self.ledger is not None:
            self.ledger.leave()
        self._release_lock()
        log.info("stopped")

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.ftruncate(self._lock_fd, 0)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

