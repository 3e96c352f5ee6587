"""Coverage-guided fuzzing of the protocol with atheris (libFuzzer for Python).

    scripts/fuzz.sh [SECONDS]        makes its own venv with atheris, then runs this for SECONDS

atheris is not a dependency of the sidecar, and is never installed into the project's venv.
The target is the sidecar's own reader and dispatcher, in this process, with a real session
(real config, real supervised DuckDB workers), so atheris sees which branches each input
reaches. An input is either raw bytes, split into lines as stdin would be (framing included), or
choices fed to the structure-aware generator of `sidecar.fuzz_cases` (so a mutation of the input
is a mutation of the request's structure). A failure raises, atheris stops and writes the input:
an exception out of `handle_line`, a line out that is not JSON, an INTERNAL answer, or an id of a
well-formed request not answered exactly once.
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, cast

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("atheris is not installed here; run scripts/fuzz.sh, which makes a venv with it")

with atheris.instrument_imports(include=["sidecar"]):
    import msgspec

    from sidecar.fuzz import sidecar_env
    from sidecar.fuzz_cases import Case, CaseGenerator, load_param_schemas
    from sidecar.protocol.framing import read_lines
    from sidecar.server import Server


class Sink(io.RawIOBase):
    """Where the dispatcher's writer puts its lines, for the checks after each input."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._lock:
            self.lines.append(bytes(data))
        return len(data)

    def take(self) -> list[bytes]:
        with self._lock:
            lines, self.lines = self.lines, []
        return lines


class ProviderChoices:
    """The `random`/`randint` the case generator asks, answered from atheris' input bytes."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def random(self) -> float:
        return float(self.provider.ConsumeProbability())

    def randint(self, a: int, b: int) -> int:
        return a + int(self.provider.ConsumeIntInRange(0, min(b - a, 2**63 - 1)))


class Target:
    def __init__(self, root: Path) -> None:
        env, _ = sidecar_env(root)
        self.sink = Sink()
        stdout = cast(IO[bytes], self.sink)  # write and flush are all the writer uses
        self.server = Server(io.BytesIO(), stdout, env=env, watch=False, shutdown_grace_s=5.0)
        self.dispatcher = self.server.dispatcher
        self.methods = sorted([*self.dispatcher.registry.methods, "$/cancelRequest", "exit"])
        self.schemas = load_param_schemas()

    def one_input(self, data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        if provider.ConsumeBool():
            case = Case("raw", [], mutated=True)
            stream = io.BytesIO(provider.ConsumeBytes(provider.remaining_bytes()))
        else:
            case = CaseGenerator(ProviderChoices(provider), self.methods, self.schemas).next_case()
            stream = io.BytesIO(b"".join(line + b"\n" for line in case.lines))
        for line in read_lines(stream, limit=1 << 20):
            self.dispatcher.handle_line(line)  # must never raise: that is the first check
        if not self.dispatcher.wait_idle(60.0):
            raise AssertionError("requests still running 60 s after their input")
        # `exit` and `shutdown` in an input ask the server to stop; the target serves the next input
        self.server.session.exit_requested.clear()
        self.server.session.shutdown_requested = False
        self.dispatcher.accepting = True
        answers: dict[Any, int] = {}
        for line in self.sink.take():
            message = msgspec.json.decode(line)  # raises on a line that is not JSON
            for item in message if isinstance(message, list) else [message]:
                if "error" in item and item["error"]["data"]["code"] == "INTERNAL":
                    raise AssertionError(f"an INTERNAL answer: {item}")
                if item.get("id") is not None:
                    answers[item["id"]] = answers.get(item["id"], 0) + 1
        for id in case.expect:
            if answers.get(id, 0) != 1:
                raise AssertionError(f"id {id!r} got {answers.get(id, 0)} answers, not 1: {case.lines!r}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bmad-atheris-") as tmp:
        target = Target(Path(tmp))
        atheris.Setup(sys.argv, target.one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
