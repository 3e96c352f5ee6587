"""`MethodSpec.claim`: what a request claims happens on the reader thread, in arrival order, before
the request is queued (query.run's job_id; sidecar/methods/query.py `_claim_job_id`)."""

from __future__ import annotations

import io
import json
import threading

import msgspec

from sidecar.errors import InvalidParams
from sidecar.protocol.calls import Registry
from sidecar.protocol.dispatcher import Dispatcher
from sidecar.protocol.framing import MessageWriter


class Named(msgspec.Struct):
    name: str


def test_a_claim_is_made_before_the_request_runs_and_a_refused_claim_is_answered_at_once():
    registry = Registry()
    claimed: list[str] = []
    release = threading.Event()

    def claim(call, p: Named) -> None:
        if p.name in claimed:
            raise InvalidParams(f"'{p.name}' is claimed already")
        claimed.append(p.name)

    @registry.method("hold", params=Named, result=None, claim=claim)
    def hold(call, p: Named) -> None:
        release.wait(10)

    out = io.BytesIO()
    dispatcher = Dispatcher(registry, MessageWriter(out), session=None)
    try:
        dispatcher.handle_line(b'{"jsonrpc": "2.0", "id": 1, "method": "hold", "params": {"name": "a"}}')
        assert claimed == ["a"]  # on this thread, while the handler has not finished (it waits)
        dispatcher.handle_line(b'{"jsonrpc": "2.0", "id": 2, "method": "hold", "params": {"name": "a"}}')
        answers = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [(a["id"], a["error"]["message"]) for a in answers] == [(2, "'a' is claimed already")]
        assert 2 not in dispatcher.inflight  # a refused claim leaves nothing in flight to wait for
    finally:
        release.set()
        dispatcher.close()
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {"jsonrpc": "2.0", "id": 1, "result": None} in answers
