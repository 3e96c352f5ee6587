"""`python -m sidecar daemon`: serve the protocol on a Unix socket for every command of this user.

Exit codes: 0 after a clean stop; 3 when another daemon already serves the socket (its pid is
on stderr); 2 for a bad option or a socket path that cannot work.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from sidecar.daemon.paths import daemon_paths
from sidecar.daemon.service import DEFAULT_IDLE_TIMEOUT_S, Daemon, DaemonRunning
from sidecar.errors import SidecarError

__all__ = ["main", "IDLE_ENV", "EXIT_RUNNING"]

IDLE_ENV = "BMAD_DATA_DAEMON_IDLE_TIMEOUT"
EXIT_RUNNING = 3
LOG_LEVELS = ("debug", "info", "warning", "error")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def idle_timeout(option: float | None, env: dict[str, str]) -> float:
    """The idle timeout in seconds: the option, else the environment, else 900.

    >>> idle_timeout(None, {"BMAD_DATA_DAEMON_IDLE_TIMEOUT": "30"})
    30.0
    >>> idle_timeout(5, {})
    5
    >>> idle_timeout(None, {"BMAD_DATA_DAEMON_IDLE_TIMEOUT": "soon"})
    Traceback (most recent call last):
    SystemExit: BMAD_DATA_DAEMON_IDLE_TIMEOUT='soon' is not a number of seconds (such as 900)
    """
    if option is not None:
        return option
    text = env.get(IDLE_ENV)
    if text is None:
        return DEFAULT_IDLE_TIMEOUT_S
    try:
        return float(text)
    except ValueError:
        raise SystemExit(f"{IDLE_ENV}={text!r} is not a number of seconds (such as 900)") from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="the socket path (default: <runtime dir>/daemon-<hash of the cwd>.sock)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        help=f"stop after this many seconds with no client and no job (env {IDLE_ENV}; default 900)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="stderr log level (env BMAD_DATA_LOG_LEVEL)")
    parser.add_argument("--no-watch", action="store_true", help="do not reload config files when they change")
    parser.add_argument("--shutdown-grace", type=float, default=30.0, help="seconds `shutdown` waits")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.log_level is not None:
        env["BMAD_DATA_LOG_LEVEL"] = args.log_level
    level = env.get("BMAD_DATA_LOG_LEVEL", "info").lower()
    logging.basicConfig(
        level=level.upper() if level in LOG_LEVELS else "INFO",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        paths = daemon_paths(env, args.socket)
        daemon = Daemon(
            paths,
            env=env,
            idle_timeout_s=idle_timeout(args.idle_timeout, env),
            watch=not args.no_watch,
            shutdown_grace_s=args.shutdown_grace,
        )
        daemon.claim()
    except DaemonRunning as err:
        print(f"bmad-data daemon: {err.message}. {err.hint}", file=sys.stderr)
        return EXIT_RUNNING
    except SidecarError as err:
        print(f"bmad-data daemon: {err.message}. {err.hint}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    return daemon.serve()
