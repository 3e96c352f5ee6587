"""The echo floor: `python -m sidecar.bench.echo` answers every request line at once.

It reads and writes with the sidecar's own framing (`read_lines`, `MessageWriter`) on one
thread and does nothing else, so its round trip is what a process hop over stdio costs on
this machine: the floor that `sidecar.bench.roundtrip` and `bmad_bridge/scripts/latency-bench.js`
print beside every sidecar figure. A request `{"id": 1, "method": "x"}` gets
`{"jsonrpc": "2.0", "id": 1, "result": null}`; a line that is not a JSON object gets a parse error.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import msgspec

from sidecar.errors import ParseError
from sidecar.protocol.framing import LineTooLong, MessageWriter, error_message, read_lines

__all__ = ["answer", "serve"]


def answer(message: Any) -> dict[str, Any] | None:
    """The echo's answer to one decoded line; None for a notification (no `id`), as JSON-RPC wants.

    >>> answer({"jsonrpc": "2.0", "id": 7, "method": "ping"})
    {'jsonrpc': '2.0', 'id': 7, 'result': None}
    >>> answer({"jsonrpc": "2.0", "method": "exit"}) is None
    True
    >>> answer([1])["error"]["data"]["code"]
    'PARSE_ERROR'
    """
    if not isinstance(message, dict):
        return error_message(None, ParseError("the echo server takes one JSON object per line"))
    if "id" not in message:
        return None
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": None}


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Answer every line of `stdin` on `stdout` until EOF."""
    writer = MessageWriter(stdout)
    decoder = msgspec.json.Decoder()
    for line in read_lines(stdin):
        if isinstance(line, LineTooLong) or not line.strip():
            continue
        try:
            message = decoder.decode(line)
        except msgspec.DecodeError as exc:
            writer.send(error_message(None, ParseError(f"not valid JSON: {exc}")))
            continue
        reply = answer(message)
        if reply is not None and not writer.send(reply):
            break
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
