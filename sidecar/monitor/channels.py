"""The `console` and `email` channels.

- `console`: each alert of a severity whose channels include `console` goes to the protocol
  subscribers (`monitor/alert`) and, when `notification_channels.console.enabled`, as one line
  to the sidecar's stderr (`format`: colored, plain or json; `timestamp`).
- `email`: each alert of a severity whose channels include `email` is sent through SMTP
  (`smtp_host`, `smtp_port`, `recipients`, `sender`; `${NAME}`s expanded from the sidecar's
  environment when the monitor starts) from its own outbox thread, retried like the webhook; a
  5xx answer of the server is not retried.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import sys
import threading
from email.message import EmailMessage
from typing import Any, TextIO

import msgspec

from sidecar.monitor.events import AlertEvent
from sidecar.monitor.outbox import BACKOFF_S, Outbox, Permanent

__all__ = ["ConsoleChannel", "ConsoleWriter", "EmailChannel", "EmailTarget", "EmailSender", "console_line"]

_COLORS = {"info": "\033[36m", "warning": "\033[33m", "critical": "\033[31m", "emergency": "\033[1;41;37m"}
_RESET = "\033[0m"


class ConsoleChannel(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = True
    format: str = "colored"
    """colored (ANSI colours when stderr is a terminal), plain, or json."""
    timestamp: bool = True


class EmailChannel(msgspec.Struct, frozen=True, kw_only=True):
    """As the file writes it (`${NAME}`s not yet expanded)."""

    enabled: bool = False
    smtp_host: Any = ""
    smtp_port: Any = 25
    recipients: Any = []
    sender: Any = "bmad-data@localhost"
    timeout: int = 10_000
    """Milliseconds per attempt."""
    retry_attempts: int = 3


class EmailTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where email goes, with every `${NAME}` expanded."""

    host: str
    port: int
    recipients: list[str]
    sender: str


def console_line(event: AlertEvent, channel: ConsoleChannel, *, color: bool) -> str:
    """One alert as the console shows it (BMad style: a marker, the severity, the rule, the message).

    >>> e = AlertEvent(id="r-1", rule="cpu_usage_warning", severity="warning", state="firing",
    ...     metric="cpu_percent", value=91.0, threshold=70.0, message="High CPU", actions_taken=["monitor"], at=0)
    >>> console_line(e, ConsoleChannel(timestamp=False), color=False)
    '⚠ WARNING cpu_usage_warning firing: High CPU [actions: monitor]'
    """
    if channel.format == "json":
        return msgspec.json.encode(event).decode()
    mark = "✓" if event.state == "resolved" else {"info": "ℹ", "warning": "⚠"}.get(event.severity, "✖")
    head = f"{mark} {event.severity.upper()}"
    if color:
        head = f"{_COLORS.get(event.severity, '')}{head}{_RESET}"
    when = ""
    if channel.timestamp:
        when = dt.datetime.fromtimestamp(event.at / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ ")
    actions = f" [actions: {', '.join(event.actions_taken)}]" if event.actions_taken else ""
    return f"{when}{head} {event.rule} {event.state}: {event.message}{actions}"


class ConsoleWriter:
    """Alert lines on stderr, one write per line (stdout belongs to the protocol)."""

    def __init__(self, channel: ConsoleChannel, stream: TextIO | None = None) -> None:
        self.channel = channel
        self.stream = stream if stream is not None else sys.stderr
        self.color = channel.format == "colored" and self.stream.isatty()
        self._lock = threading.Lock()

    def send(self, event: AlertEvent) -> None:
        line = console_line(event, self.channel, color=self.color) + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()

    def close(self) -> None:
        return None


class EmailSender(Outbox):
    name = "email"

    def __init__(self, channel: EmailChannel, target: EmailTarget, *, backoff_s: float = BACKOFF_S) -> None:
        self.channel = channel
        self.target = target
        super().__init__(channel.retry_attempts, backoff_s=backoff_s)

    def attempt(self, record: msgspec.Struct) -> None:
        event = msgspec.convert(msgspec.to_builtins(record), AlertEvent)
        message = EmailMessage()
        message["Subject"] = f"[bmad-data] {event.severity.upper()} {event.rule} {event.state}"
        message["From"] = self.target.sender
        message["To"] = ", ".join(self.target.recipients)
        message.set_content(f"{event.message}\n\n{msgspec.json.format(msgspec.json.encode(event)).decode()}\n")
        try:
            with smtplib.SMTP(self.target.host, self.target.port, timeout=self.channel.timeout / 1000) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as err:
            raise Permanent(f"every recipient was refused: {err.recipients}") from err
        except smtplib.SMTPResponseException as err:
            if err.smtp_code >= 500:
                raise Permanent(f"SMTP {err.smtp_code} {err.smtp_error!r}") from err
            raise
