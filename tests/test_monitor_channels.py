"""The console (stderr lines) and email (SMTP) channels, and sms refused with a clear warning: a
real sidecar delivers a planted alert by email to a tiny SMTP server written here on socketserver."""

from __future__ import annotations

import socketserver
import threading
import time
from email import message_from_string
from pathlib import Path

import pytest

from sidecar.monitor.channels import EmailChannel, EmailSender, EmailTarget
from sidecar.monitor.events import AlertEvent

THRESHOLDS = "data/resource-thresholds-config.yaml"


class Smtp:
    """A minimal SMTP server: enough of RFC 5321 for smtplib's send_message; `refuse` answers
    RCPT with 550 (a permanent failure)."""

    def __init__(self, refuse: bool = False) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self.sessions = 0
        self.got = threading.Event()
        box = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, text: str) -> None:
                self.wfile.write(f"{text}\r\n".encode())

            def handle(self) -> None:
                box.sessions += 1
                self.reply("220 test SMTP")
                sender, rcpts, lines, data = "", [], [], False
                for raw in self.rfile:
                    line = raw.decode().rstrip("\r\n")
                    if data:
                        if line == ".":
                            box.messages.append((sender, rcpts, "\n".join(lines)))
                            box.got.set()
                            data, lines = False, []
                            self.reply("250 queued")
                        else:
                            lines.append(line[1:] if line.startswith("..") else line)
                        continue
                    verb = line[:4].upper()
                    if verb == "MAIL":
                        sender = line.split(":", 1)[1].strip("<> ")
                    elif verb == "RCPT":
                        if refuse:
                            self.reply("550 no such user")
                            continue
                        rcpts.append(line.split(":", 1)[1].strip("<> "))
                    elif verb == "DATA":
                        data = True
                        self.reply("354 go on")
                        continue
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp():
    server = Smtp()
    yield server
    server.close()


EVENT = AlertEvent(id="r-1", rule="cpu_usage_warning", severity="warning", state="firing", metric="cpu_percent",
                   value=91.0, threshold=70.0, message="High CPU usage: 91%", actions_taken=["monitor"], at=0)


def test_email_goes_through_smtp_with_the_alert_in_it(smtp):
    target = EmailTarget(host="127.0.0.1", port=smtp.port, recipients=["ops@example.com"], sender="sc@example.com")
    sender = EmailSender(EmailChannel(enabled=True, retry_attempts=0), target)
    sender.send(EVENT)
    sender.close()
    assert sender.sent == 1 and len(smtp.messages) == 1
    mail_from, rcpts, text = smtp.messages[0]
    assert mail_from == "sc@example.com" and rcpts == ["ops@example.com"]
    message = message_from_string(text)
    assert message["Subject"] == "[bmad-data] WARNING cpu_usage_warning firing"
    assert "High CPU usage: 91%" in message.get_payload()


def test_a_refused_recipient_is_not_retried():
    refusing = Smtp(refuse=True)
    try:
        target = EmailTarget(host="127.0.0.1", port=refusing.port, recipients=["x@example.com"], sender="s@example.com")
        sender = EmailSender(EmailChannel(enabled=True, retry_attempts=3), target, backoff_s=0.01)
        sender.send(EVENT)
        sender.close()
        assert sender.failed == 1 and sender.sent == 0 and refusing.sessions == 1 and refusing.messages == []
    finally:
        refusing.close()


CHANNELS = """
alerting_rules:
  severity_levels:
    warning:
      notification_channels: ["log", "console", "email", "sms"]
notification_channels:
  console:
    enabled: true
    format: "plain"
    timestamp: false
  email:
    enabled: true
    smtp_host: "${SMTP_HOST}"
    smtp_port: "${SMTP_PORT}"
    recipients: ["${ALERT_EMAIL}"]
"""


def test_a_real_sidecar_mails_and_prints_a_planted_alert_and_says_sms_is_not_delivered(start_sidecar, pack_dir, smtp):
    path: Path = pack_dir / THRESHOLDS
    text = path.read_text()
    planted = text.replace("    warning: 80\n    critical: 90\n", "    warning: 1\n    critical: 90\n")
    assert planted != text
    path.write_text(planted + CHANNELS)
    sc = start_sidecar(SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), ALERT_EMAIL="oncall@example.com")
    sub = sc.request("monitor.subscribe", {"alerts_only": True})
    sms = [d for d in sub["diagnostics"] if "sms" in d["message"]]
    assert len(sms) == 1 and "alerts are NOT delivered by SMS" in sms[0]["message"]
    assert "webhook" in sms[0]["hint"] and sms[0]["line"] is not None
    assert smtp.got.wait(60), "no email arrived"
    _, rcpts, mail = smtp.messages[0]
    assert rcpts == ["oncall@example.com"]
    assert message_from_string(mail)["Subject"] == "[bmad-data] WARNING system_memory_warning firing"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("WARNING system_memory_warning firing: System memory" in line
                                                  for line in list(sc.stderr_tail)):
        time.sleep(0.1)
    assert any(line.startswith("⚠ WARNING system_memory_warning firing: ") for line in list(sc.stderr_tail))


def test_an_unset_variable_turns_email_off_with_a_warning_at_its_line(pack_dir):
    from sidecar.config.pack import load_pack
    from sidecar.monitor.config import monitor_config

    path: Path = pack_dir / THRESHOLDS
    path.write_text(path.read_text() + CHANNELS)
    config = monitor_config(load_pack(pack_dir), str(pack_dir / "state"), env={"SMTP_HOST": "h", "SMTP_PORT": "25"})
    assert config.email_target is None
    said = next(d for d in config.diagnostics if d.path == "notification_channels.email.recipients")
    assert "ALERT_EMAIL not set" in said.message
    assert said.line == next(i for i, line in enumerate(path.read_text().splitlines(), 1) if "ALERT_EMAIL" in line)


def test_autostart_raises_alerts_into_the_log_with_no_monitor_call(start_sidecar, pack_dir, tmp_path):
    path: Path = pack_dir / THRESHOLDS
    text = path.read_text()
    planted = text.replace("    warning: 80\n    critical: 90\n", "    warning: 1\n    critical: 90\n")
    planted = planted.replace("monitoring_config:\n", "monitoring_config:\n  autostart: true\n")
    assert planted.count("autostart") == 1
    path.write_text(planted)
    sc = start_sidecar()
    assert sc.request("query.run", {"sql": "SELECT 1"})["rows"] == [[1]]  # the only call: no monitor.*
    log = tmp_path / "state" / "logs" / "duckdb-alerts.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and "system_memory_warning" in log.read_text()):
        time.sleep(0.1)
    assert '"rule":"system_memory_warning"' in log.read_text()
    assert any("monitor started with the sidecar (monitoring_config.autostart)" in line for line in sc.stderr_tail)
