"""The webhook channel against a real HTTP server on 127.0.0.1: JSON bodies, ${ENV} in the URL,
retries with backoff after a 5xx, no retry after a 4xx, and a dead endpoint never blocks `send`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from sidecar.config.pack import load_pack
from sidecar.monitor.config import monitor_config
from sidecar.monitor.events import AlertEvent
from sidecar.monitor.webhook import WebhookChannel, WebhookSender

THRESHOLDS = "data/resource-thresholds-config.yaml"


class Hook:
    """A local endpoint answering with the statuses queued in `answers` (then 200)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.answers: list[int] = []
        self.got = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.answers.pop(0) if hook.answers else 200
                hook.paths.append(self.path)
                if status == 200:
                    hook.bodies.append(json.loads(body))
                    hook.got.set()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def _event() -> AlertEvent:
    return AlertEvent(
        id="duckdb_memory_warning-1", rule="duckdb_memory_warning", severity="warning", state="firing",
        metric="duckdb_memory_percent", value=80.0, threshold=75.0, message="DuckDB memory usage at 80.0%",
        actions_taken=["monitor"], at=1,
    )


def test_posts_json_after_retrying_server_errors(hook):
    hook.answers = [500, 503]
    sender = WebhookSender(WebhookChannel(enabled=True, retry_attempts=3), f"http://127.0.0.1:{hook.port}/a", backoff_s=0.01)
    sender.send(_event())
    assert hook.got.wait(10)
    sender.close()
    assert hook.bodies == [json.loads(json.dumps(hook.bodies[0]))] and hook.bodies[0]["id"] == "duckdb_memory_warning-1"
    assert hook.paths == ["/a", "/a", "/a"] and sender.sent == 1 and sender.failed == 0


def test_a_client_error_is_not_retried_and_retries_run_out(hook):
    hook.answers = [400, 500, 500]
    sender = WebhookSender(WebhookChannel(enabled=True, retry_attempts=1), f"http://127.0.0.1:{hook.port}/b", backoff_s=0.01)
    sender.send(_event())  # 400: refused, not retried
    sender.send(_event())  # 500 then 500: one retry, then given up
    sender.close()
    assert hook.paths == ["/b", "/b", "/b"] and sender.failed == 2 and sender.sent == 0


def test_a_dead_endpoint_never_blocks_send():
    sender = WebhookSender(WebhookChannel(enabled=True, timeout=200, retry_attempts=0), "http://127.0.0.1:9/")
    started = time.monotonic()
    for _ in range(50):
        sender.send(_event())
    assert time.monotonic() - started < 0.5  # queued, not sent, on the caller's thread
    sender.close()
    assert sender.failed + sender.sent == 50


def test_the_url_takes_env_and_a_missing_variable_is_a_warning_at_its_line(pack_dir: Path, hook):
    path = pack_dir / THRESHOLDS
    path.write_text(
        path.read_text()
        + "\nnotification_channels:\n  webhook:\n    enabled: true\n    url: \"http://${HOOK_HOST}/alerts\"\n"
        "    timeout: 2000\n    retry_attempts: 2\n"
    )
    config = monitor_config(load_pack(pack_dir), str(pack_dir), {"HOOK_HOST": f"127.0.0.1:{hook.port}"})
    assert config.webhook_url == f"http://127.0.0.1:{hook.port}/alerts" and config.webhook.retry_attempts == 2
    off = monitor_config(load_pack(pack_dir), str(pack_dir), {})
    assert off.webhook_url == ""
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "HOOK_HOST" in text)
    warning = next(d for d in off.diagnostics if d.path == "notification_channels.webhook.url")
    assert warning.line == line and "HOOK_HOST" in warning.message
