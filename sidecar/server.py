"""`python -m sidecar`: JSON-RPC 2.0 over stdio until EOF or `exit`.

(`python -m sidecar daemon` serves the same protocol to many clients on a Unix socket:
`sidecar/daemon/`.)

Threads take turns reading lines and dispatching them (the reader of a work request runs it and
passes reading on: sidecar/protocol/turns.py) while the main thread waits for the end, so that a
signal reaches it; answers and notifications go out through one writer. Ending:
- `shutdown` (request): stop taking work, let running requests finish (cancelling them
  after `--shutdown-grace` seconds), answer null; then `exit` (notification) ends the process.
- EOF on stdin: no new work; running requests finish (each within its own timeout) and
  their answers are written, so `cat requests.jsonl | python -m sidecar` answers them all.
  If stdout is gone too (the client died), running requests are cancelled at once.
- SIGTERM or SIGINT: running requests are cancelled at once.
Either way the sidecar removes its spill files and temporary outputs and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import IO, Any, Mapping

from sidecar import __version__
from sidecar.methods import load_all
from sidecar.methods.maintenance import DEFAULT_JOB_MAX_AGE_MS, remove_stale_job_directories
from sidecar.methods.monitor import start_if_configured
from sidecar.protocol.dispatcher import Dispatcher
from sidecar.protocol.framing import MessageWriter, claim_stdout, read_lines
from sidecar.session import Session

__all__ = ["Server", "main"]

log = logging.getLogger("sidecar")

LOG_LEVELS = ("debug", "info", "warning", "error")


class Server:
    def __init__(
        self,
        stdin: IO[bytes],
        stdout: IO[bytes],
        *,
        env: Mapping[str, str] | None = None,
        watch: bool = True,
        shutdown_grace_s: float = 30.0,
    ) -> None:
        self.stdin = stdin
        self.writer = MessageWriter(stdout)
        self.shutdown_grace_s = shutdown_grace_s
        self.session = Session(self.notify, env=env, watch=watch)
        self.session.server = self  # type: ignore[attr-defined]
        self.dispatcher = Dispatcher(load_all(), self.writer, self.session)

    def notify(self, method: str, params: Any) -> None:
        self.writer.send({"jsonrpc": "2.0", "method": method, "params": params})

    def serve(self) -> int:
        freed, removed = self.session.engine.cleanup(aggressive=False)
        # job directories nobody resumed within the default age, and those of dead sidecars, go by age
        try:
            job_bytes, job_files = remove_stale_job_directories(
                self.session.settings.state_directory, DEFAULT_JOB_MAX_AGE_MS, ()
            )
        except OSError:  # housekeeping never keeps the sidecar from serving; `cleanup` can retry it
            log.warning("could not sweep old job directories", exc_info=True)
            job_bytes = job_files = 0
        freed, removed = freed + job_bytes, removed + job_files
        if removed:
            log.info("removed %d file(s), %d bytes, left behind by earlier runs", removed, freed)
        start_if_configured(self.session)  # else the first monitor.* call starts it
        log.info("bmad-data sidecar %s ready (pid %d)", __version__, os.getpid())
        drain = True
        try:
            self.dispatcher.serve(read_lines(self.stdin), self.session.exit_requested)
        except (KeyboardInterrupt, SystemExit):
            log.info("stopping on a signal")
            drain = False
        finally:
            self.stop(drain=drain)
        return 0

    def stop(self, *, drain: bool) -> None:
        """Stop: let running requests finish while someone reads their answers, else cancel them."""
        self.dispatcher.stop_accepting()
        while drain and not self.dispatcher.wait_idle(0.2):
            if self.writer.closed:
                break
        self.dispatcher.cancel_all("shutdown")
        self.dispatcher.wait_idle(10.0)
        self.dispatcher.close()
        self.session.close()
        log.info("stopped")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["daemon"]:  # `python -m sidecar daemon`: the same protocol on a Unix socket
        from sidecar.daemon.main import main as daemon_main

        return daemon_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m sidecar", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="stderr log level; ranks as BMAD_DATA_LOG_LEVEL, above the profile's monitoring.log_level "
        "(default info)",
    )
    parser.add_argument("--config-dir", help="the expansion pack directory (env BMAD_DATA_CONFIG_DIR)")
    parser.add_argument("--no-watch", action="store_true", help="do not reload config files when they change")
    parser.add_argument(
        "--shutdown-grace", type=float, default=30.0, help="seconds `shutdown` waits for running work"
    )
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.log_level is not None:
        env["BMAD_DATA_LOG_LEVEL"] = args.log_level
    level = env.get("BMAD_DATA_LOG_LEVEL", "info").lower()
    logging.basicConfig(  # until the settings are resolved, which set the level the config asks for
        level=level.upper() if level in LOG_LEVELS else "INFO",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.config_dir:
        env["BMAD_DATA_CONFIG_DIR"] = args.config_dir
    protocol_out = claim_stdout()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    server = Server(
        sys.stdin.buffer, protocol_out, env=env, watch=not args.no_watch, shutdown_grace_s=args.shutdown_grace
    )
    return server.serve()
