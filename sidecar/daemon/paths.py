"""Where a user's daemon listens: its runtime directory, socket, lock and log.

The runtime directory is `BMAD_DATA_RUNTIME_DIR` when set (tests use it for isolation), else
`$XDG_RUNTIME_DIR/bmad-data` (per user, on a tmpfs the system empties at logout), else `run/`
under the state directory `sidecar/layout.py` picks. The Node bridge computes the same path
(`bmad_bridge/lib/daemon-paths.js`) and passes `BMAD_DATA_RUNTIME_DIR` to a daemon it starts.
The directory is made 0700 and must belong to the user: nobody else may reach the socket.

There is one daemon per user and working directory (`daemon-<12 hex of sha256(cwd)>.sock`): a
relative path in SQL or in a parameter means, to a daemon, what it would mean to a sidecar the
command started itself, because the daemon runs in the command's directory. Daemons of several
directories share the machine budget through the ledger (`sidecar/daemon/ledger.py`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sidecar.errors import AccessDenied, InputError
from sidecar.layout import default_state_dir

__all__ = [
    "RUNTIME_ENV",
    "MAX_SOCKET_PATH",
    "DaemonPaths",
    "runtime_dir",
    "daemon_name",
    "daemon_paths",
    "ensure_private_dir",
]

RUNTIME_ENV = "BMAD_DATA_RUNTIME_DIR"
MAX_SOCKET_PATH = 107
"""sun_path holds 108 bytes on Linux, the last one a NUL."""


@dataclass(frozen=True)
class DaemonPaths:
    directory: Path
    socket: Path
    lock: Path
    """Held (flock) for the daemon's life, with its pid inside: a second daemon refuses to start."""
    log: Path


def runtime_dir(env: Mapping[str, str]) -> Path:
    """The user's runtime directory for the daemon.

    >>> runtime_dir({"BMAD_DATA_RUNTIME_DIR": "/tmp/bd-test"}).as_posix()
    '/tmp/bd-test'
    >>> runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}).as_posix()
    '/run/user/1000/bmad-data'
    """
    if env.get(RUNTIME_ENV):
        return Path(env[RUNTIME_ENV]).expanduser().absolute()
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "bmad-data"
    return default_state_dir()[0] / "run"


def daemon_name(cwd: str | os.PathLike[str]) -> str:
    """The daemon's file name stem for a working directory (the Node bridge computes the same).

    >>> daemon_name("/home/ada/project")
    'daemon-6bfafd9246cf'
    """
    return "daemon-" + hashlib.sha256(os.fsencode(cwd)).hexdigest()[:12]


def daemon_paths(
    env: Mapping[str, str], socket: str | None = None, cwd: str | os.PathLike[str] | None = None
) -> DaemonPaths:
    """The files of the daemon for `cwd` (default: this process's); `socket` (the `--socket`
    option) puts them beside that path instead.

    >>> daemon_paths({"BMAD_DATA_RUNTIME_DIR": "/tmp/bd"}, cwd="/home/ada/project").socket.as_posix()
    '/tmp/bd/daemon-6bfafd9246cf.sock'
    >>> daemon_paths({}, "/tmp/x/my.sock").lock.as_posix()
    '/tmp/x/my.sock.lock'
    """
    if socket is not None:
        path = Path(socket).expanduser().absolute()
        paths = DaemonPaths(path.parent, path, Path(f"{path}.lock"), Path(f"{path}.log"))
    else:
        directory = runtime_dir(env)
        stem = daemon_name(os.getcwd() if cwd is None else cwd)
        paths = DaemonPaths(
            directory, directory / f"{stem}.sock", directory / f"{stem}.lock", directory / f"{stem}.log"
        )
    if len(os.fsencode(paths.socket)) > MAX_SOCKET_PATH:
        raise InputError(
            f"the socket path {paths.socket} is {len(os.fsencode(paths.socket))} bytes; "
            f"a Unix socket path holds at most {MAX_SOCKET_PATH}",
            hint=f"Set {RUNTIME_ENV} to a shorter directory, such as /tmp/bmad-data-$USER (the daemon's socket goes there).",
        )
    return paths


def ensure_private_dir(directory: Path) -> None:
    """Make `directory` (0700) or check an existing one belongs to this user; tighten its mode."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid():
        raise AccessDenied(
            f"the daemon's runtime directory {directory} belongs to uid {info.st_uid}, not to you "
            f"(uid {os.getuid()})",
            hint=f"Set {RUNTIME_ENV} to a directory of your own.",
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)
