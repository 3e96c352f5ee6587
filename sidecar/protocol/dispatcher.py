"""From a decoded line to one method call, and from its outcome to one answer.

Cheap methods (`system.resources`, `config.get`, `$/cancelRequest`) are served inline on
the reader thread, so they are never queued behind a long query. Work methods run on the thread
that read them when lines are read by `serve` (it passes reading on: `turns.py`), else (a batch's
members, more requests at once than the limit) on a thread pool. Every bad line gets its error and the next line is served normally. A request's
`Call` and the method table live in `calls.py` (named here too, where the methods import them
from), the checks on values no method can take in `checks.py`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import msgspec

from sidecar.errors import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    SidecarError,
    did_you_mean,
)
from sidecar.protocol.calls import Call, MethodSpec, Registry
from sidecar.protocol.checks import check_values, path_error
from sidecar.protocol.framing import MAX_LINE_BYTES, LineTooLong, MessageWriter, error_message
from sidecar.protocol.messages import CancelParams
from sidecar.protocol.turns import Turns

__all__ = ["Call", "MethodSpec", "Registry", "Dispatcher", "error_message"]

log = logging.getLogger(__name__)

MAX_BATCH = 10_000
"""The most members a batch may have. Each member gets an answer object, all sent on one line,
so an unbounded batch (a 16 MiB line of `1,1,1,...` holds 8 million) would hold gigabytes."""

MAX_DEPTH = sys.getrecursionlimit()
"""About how deeply the JSON decoder follows nesting before it gives up (Python's recursion limit)."""

Reply = Callable[[dict[str, Any] | None], None]


class _Once:
    """A reply that passes on its first answer only, so a request never gets two."""

    __slots__ = ("_reply", "_used", "_lock")

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._used = False
        self._lock = threading.Lock()

    def __call__(self, response: dict[str, Any] | None) -> None:
        with self._lock:
            if self._used:
                return
            self._used = True
        self._reply(response)


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (int, str)) and not isinstance(value, bool))


class Dispatcher:
    def __init__(
        self, registry: Registry, writer: MessageWriter, session: Any, *, max_workers: int = 32
    ) -> None:
        self.registry = registry
        self.writer = writer
        self.session = session
        self.inflight: dict[Any, Call] = {}
        self._answering = 0
        """Requests finished but still writing their answer: idle means every answer is out."""
        self.accepting = True
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
        self._decoder = msgspec.json.Decoder()
        self._turns: Turns | None = None

    def serve(self, lines: Iterator[bytes | LineTooLong], stop: threading.Event) -> None:
        """Serve `lines` until they end or `stop` is set, reading on threads that take turns."""
        self._turns = Turns(lines, self.handle_line, stop=stop, max_threads=self._max_workers)
        self._turns.serve()

    # -- lines ---------------------------------------------------------------------------

    def handle_line(self, line: bytes | LineTooLong) -> None:
        """Serve one line. Nothing a line holds escapes as an exception: the reader loop must live.

        A fault that slips past the checks below is a bug: it is logged and answered as INTERNAL
        (`tests/test_fuzz_protocol.py` feeds this method thousands of hostile lines).
        """
        try:
            self._handle_line(line)
        except Exception as exc:
            log.exception("internal error while serving a line")
            err = InternalError(f"internal error while reading a line: {type(exc).__name__}: {exc}")
            self.writer.send(error_message(None, err))

    def _handle_line(self, line: bytes | LineTooLong) -> None:
        if isinstance(line, LineTooLong):
            err = ParseError(
                f"a request line of {line.length} bytes exceeds the limit of {MAX_LINE_BYTES} bytes",
                hint="Put large inputs in a file and pass its path; requests carry SQL and parameters only.",
            )
            self.writer.send(error_message(None, err))
            return
        if not line.strip():
            return
        try:
            message = self._decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            self.writer.send(error_message(None, ParseError(f"not valid JSON: {exc}")))
            return
        except RecursionError:
            err = ParseError(
                f"JSON nested more deeply than the decoder allows (about {MAX_DEPTH} levels)",
                hint="A request nests a few levels deep; send one JSON object (or batch array) per line.",
            )
            self.writer.send(error_message(None, err))
            return
        if isinstance(message, list):
            self._handle_batch(message)
        else:
            self._handle_one(message, self._send, may_keep=True)

    def _send(self, response: dict[str, Any] | None) -> None:
        if response is not None:
            self.writer.send(response)

    def _handle_batch(self, items: list[Any]) -> None:
        if not items:
            self.writer.send(error_message(None, InvalidRequest("an empty batch array is not a request")))
            return
        if len(items) > MAX_BATCH:
            err = InvalidRequest(
                f"a batch of {len(items)} members exceeds the limit of {MAX_BATCH}; none of it was run",
                hint=f"Send at most {MAX_BATCH} requests per batch, or send them as separate lines.",
            )
            self.writer.send(error_message(None, err))
            return
        responses: list[dict[str, Any] | None] = [None] * len(items)
        remaining = [len(items)]
        lock = threading.Lock()

        def collector(index: int) -> Reply:
            def reply(response: dict[str, Any] | None) -> None:
                with lock:
                    responses[index] = response
                    remaining[0] -= 1
                    done = remaining[0] == 0
                if done:
                    answers = [r for r in responses if r is not None]
                    if answers:
                        self.writer.send(answers)

            return reply

        for index, item in enumerate(items):
            self._handle_one(item, collector(index))

    # -- one request ---------------------------------------------------------------------

    def _handle_one(self, message: Any, reply: Reply, *, may_keep: bool = False) -> None:
        """Serve one request or notification; `reply` is called exactly once, whatever happens.
        `may_keep`: a work request may run on this thread, if it is reading and can pass that on."""
        once = _Once(reply)
        try:
            self._serve_one(message, once, may_keep)
        except Exception as exc:  # a bug: answer it with a stable code, and keep serving
            log.exception("internal error while dispatching a request")
            id = message.get("id") if isinstance(message, dict) else None
            id = id if _valid_id(id) else None
            with self._lock:
                call = self.inflight.get(id)
                if call is not None and call.future is None and not call.finished.is_set():
                    del self.inflight[id]  # registered but never started: nothing else will answer it
                    self._idle.notify_all()
            if isinstance(message, dict) and "id" not in message:
                once(None)  # a notification gets no answer, not even this one; the log has it
            else:
                err = InternalError(f"internal error while dispatching: {type(exc).__name__}: {exc}")
                once(error_message(id, err))

    def _serve_one(self, message: Any, reply: Reply, may_keep: bool) -> None:
        if not isinstance(message, dict):
            reply(
                error_message(None, InvalidRequest(f"expected a JSON object, got {type(message).__name__}"))
            )
            return
        is_notification = "id" not in message
        id = message.get("id")
        if not _valid_id(id):
            reply(error_message(None, InvalidRequest("`id` must be a string, an integer or null")))
            return
        try:
            call, spec, params = self._prepare(message, id)
        except SidecarError as err:
            reply(None if is_notification else error_message(id, err))
            return
        if spec is None:  # handled on the spot ($/cancelRequest, exit, an optional notification)
            reply(None if is_notification else {"jsonrpc": "2.0", "id": id, "result": None})
            return
        answer: Reply = (lambda response: reply(None)) if is_notification else reply
        if spec.inline or (may_keep and self._turns is not None and self._turns.pass_turn()):
            self._run(call, spec, params, answer)
        else:
            call.future = self._pool.submit(self._run, call, spec, params, answer)

    def _prepare(self, message: dict[str, Any], id: Any) -> tuple[Call, MethodSpec | None, Any]:
        if message.get("jsonrpc") != "2.0":
            raise InvalidRequest('`jsonrpc` must be "2.0"')
        method = message.get("method")
        if not isinstance(method, str):
            raise InvalidRequest("`method` must be a string")
        raw_params = message.get("params", {})
        if raw_params is None:
            raw_params = {}
        if not isinstance(raw_params, dict):
            raise InvalidParams(f"`params` of {method} must be an object with named members")
        if method == "$/cancelRequest":
            self._cancel_request(raw_params)  # sent as a request, it gets its (empty) answer
            return Call(id, method, None, self.writer, self.session), None, None
        if method == "exit":
            self.session.request_exit()
            return Call(id, method, None, self.writer, self.session), None, None
        spec = self.registry.methods.get(method)
        if spec is None:
            if "id" not in message and method.startswith("$/"):
                return Call(id, method, None, self.writer, self.session), None, None  # optional notification
            raise MethodNotFound(f"unknown method '{method}'{did_you_mean(method, self.registry.methods)}")
        token = raw_params.pop("progress_token", None) if isinstance(raw_params, dict) else None
        if token is not None and (not isinstance(token, (str, int)) or isinstance(token, bool)):
            raise InvalidParams("`progress_token` must be a string or an integer")
        check_values(spec.name, raw_params)
        params = self._convert(spec, raw_params)
        call = Call(id, method, token, self.writer, self.session)
        with self._lock:
            if not self.accepting and method not in ("shutdown", "system.resources", "config.get"):
                raise InvalidRequest("the sidecar is shutting down and accepts no new work")
            if "id" in message and id in self.inflight:
                raise InvalidRequest(f"a request with id {id!r} is still in flight; ids must be unique")
            if spec.claim is not None:  # in arrival order, before the request is queued
                spec.claim(call, params)
            if "id" in message:
                self.inflight[id] = call
        return call, spec, params

    def _convert(self, spec: MethodSpec, raw: dict[str, Any]) -> Any:
        if spec.params is None:
            if raw:
                raise InvalidParams(f"{spec.name} takes no parameters, got {sorted(raw)}")
            return None
        try:
            return msgspec.convert(raw, spec.params)
        except msgspec.ValidationError as exc:
            text = str(exc)
            hint = None
            if text.startswith("Object contains unknown field"):
                unknown = text.split("`")[1] if "`" in text else ""
                known = getattr(spec.params, "__struct_fields__", ())
                suggestion = did_you_mean(unknown, known)
                text = f"{text}{suggestion}" if suggestion else text
                hint = f"{spec.name} accepts: {', '.join(known)} (and progress_token)."
            raise InvalidParams(f"invalid params for {spec.name}: {text}", hint=hint) from exc

    def _run(self, call: Call, spec: MethodSpec, params: Any, reply: Reply) -> None:
        try:
            response = self._outcome(call, spec, params)
            with self._lock:  # the id is free before its answer is out, so a client may reuse it at once
                self._release(call)
                self._answering += 1
            try:
                reply(response)
            finally:
                with self._lock:
                    self._answering -= 1
                    self._idle.notify_all()
        finally:  # also when a signal's SystemExit stops an inline request
            with self._lock:
                self._release(call)
                self._idle.notify_all()
            call.finished.set()

    def _release(self, call: Call) -> None:
        if self.inflight.get(call.id) is call:
            del self.inflight[call.id]

    def _outcome(self, call: Call, spec: MethodSpec, params: Any) -> dict[str, Any]:
        try:
            result = spec.handler(call, params)
            return {"jsonrpc": "2.0", "id": call.id, "result": result}
        except SidecarError as err:
            return error_message(call.id, err)
        except OSError as exc:
            return error_message(call.id, path_error(spec.name, exc))
        except Exception as exc:  # a bug: report it with a stable code, and keep serving
            log.exception("internal error in %s", spec.name)
            err = InternalError(f"internal error in {spec.name}: {type(exc).__name__}: {exc}")
            return error_message(call.id, err)

    def _cancel_request(self, params: dict[str, Any]) -> None:
        try:
            target = msgspec.convert(params, CancelParams).id
        except msgspec.ValidationError as exc:
            raise InvalidParams(
                f"invalid params for $/cancelRequest: {exc}",
                hint='Send {"id": <the id of the request to cancel>}, an integer or a string.',
            ) from exc
        with self._lock:
            call = self.inflight.get(target)
        if call is not None:
            log.info("cancelling request %r", target)
            call.cancel("cancelled")

    # -- lifecycle -----------------------------------------------------------------------

    def stop_accepting(self) -> None:
        with self._lock:
            self.accepting = False

    def cancel_all(self, reason: str) -> None:
        with self._lock:
            calls = list(self.inflight.values())
        for call in calls:
            call.cancel(reason)

    def wait_idle(self, timeout: float, exclude: Call | None = None) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._answering or any(c is not exclude for c in self.inflight.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
