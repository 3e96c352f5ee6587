"""The monitor's whole configuration from the pack's thresholds file: rules, channels, cadence.

`alerting_rules` and `notification_channels` are re-read here with their lines (the pack loader
keeps them as plain data); `monitoring_config.intervals.resource_check` is the sampling
interval and `monitoring_config.retention` sizes the history rings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import msgspec

from sidecar.config.diagnostics import Diagnostic
from sidecar.config.pack import Pack
from sidecar.config.validate import INFO, Ctx, Leaf, Section, to_bool, to_choice, to_int, to_size, to_str, walk
from sidecar.config.yamlload import MarkedDict, load_yaml
from sidecar.monitor.rules import RuleSet, build_rules
from sidecar.monitor.triggers import build_triggers
from sidecar.monitor.channels import ConsoleChannel, EmailChannel, EmailTarget
from sidecar.monitor.webhook import WebhookChannel, expand_env

__all__ = ["LogChannel", "MonitorConfig", "monitor_config", "DEFAULT_INTERVAL_MS", "DEFAULT_HISTORY"]

DEFAULT_INTERVAL_MS = 1000
DEFAULT_HISTORY = 600
"""Samples kept without a `monitoring_config.retention.memory_metrics` (10 minutes at 1 s)."""


class LogChannel(msgspec.Struct, frozen=True, kw_only=True):
    """Alerts as JSON lines; a relative `log_file` is under the state directory."""

    enabled: bool = True
    log_file: str = "logs/duckdb-alerts.log"
    rotation: str = "daily"
    max_size: int = 100 * 1000**2
    timestamp: bool = True


class _Channels(msgspec.Struct, frozen=True, kw_only=True):
    log: LogChannel = LogChannel()
    console: ConsoleChannel = ConsoleChannel()
    webhook: WebhookChannel = WebhookChannel()
    email: EmailChannel = EmailChannel()
    sms: Any = None


CHANNELS_SPEC = Section(
    _Channels,
    {
        "log": Section(
            LogChannel,
            {
                "enabled": Leaf(to_bool),
                "log_file": Leaf(to_str),
                "rotation": Leaf(to_choice("daily", "size", "none")),
                "max_size": Leaf(to_size(1)),
                "timestamp": Leaf(to_bool),
            },
        ),
        # sms is refused per severity level in sidecar.monitor.rules
        "console": Section(
            ConsoleChannel,
            {"enabled": Leaf(to_bool), "format": Leaf(to_choice("colored", "plain", "json")), "timestamp": Leaf(to_bool)},
        ),
        "webhook": Section(
            WebhookChannel,
            {
                "enabled": Leaf(to_bool),
                "url": INFO,  # ${NAME} is expanded when the channel starts, and only if it is enabled
                "timeout": Leaf(to_int(1)),
                "retry_attempts": Leaf(to_int(0, 10)),
            },
        ),
        "email": Section(
            EmailChannel,
            {
                "enabled": Leaf(to_bool),
                # ${NAME}s are expanded when the channel starts, and only if it is enabled
                "smtp_host": INFO,
                "smtp_port": INFO,
                "recipients": INFO,
                "sender": INFO,
                "timeout": Leaf(to_int(1)),
                "retry_attempts": Leaf(to_int(0, 10)),
            },
        ),
        "sms": INFO,
    },
)


class MonitorConfig(msgspec.Struct, frozen=True, kw_only=True):
    rules: RuleSet
    log: LogChannel
    webhook: WebhookChannel = WebhookChannel()
    webhook_url: str = ""
    """The URL with its ${NAME}s expanded; empty when the webhook is off."""
    console: ConsoleChannel = ConsoleChannel()
    email: EmailChannel = EmailChannel()
    email_target: EmailTarget | None = None
    """Host, port and recipients with their ${NAME}s expanded; None when email is off."""
    interval_ms: int = DEFAULT_INTERVAL_MS
    history: int = DEFAULT_HISTORY
    alert_history: int = 1000
    diagnostics: list[Diagnostic] = []


def _retention(info: Any, key: str, default: int) -> int:
    value = (info or {}).get("retention", {}).get(key) if isinstance(info, dict) else None
    return value if isinstance(value, int) and value > 0 else default


def _off_unless_enabled(name: str, enabled: bool, rules: RuleSet, ctx: Ctx) -> bool:
    """Whether a channel is on; a channel severity levels name but that is off is a warning."""
    key = f"notification_channels.{name}"
    wanted = [level for level, lv in rules.levels.items() if name in lv.notification_channels]
    if not enabled and wanted:
        ctx.add("warning", ctx.positions.get(key), key,
                f"severity level(s) {', '.join(wanted)} name the {name} channel, but it is not enabled",
                f"set notification_channels.{name}.enabled: true and its settings")
    return enabled


def _expanded(name: str, field: str, raw: Any, ctx: Ctx, env: Mapping[str, str]) -> str | None:
    """One setting with its ${NAME}s expanded, or None (and a warning at its line) when one is unset."""
    value, missing = expand_env(str(raw), env)
    if missing:
        key = f"notification_channels.{name}"
        ctx.add("warning", ctx.positions.get(f"{key}.{field}", ctx.positions.get(key)), f"{key}.{field}",
                f"the {name} channel is off: environment variable(s) {', '.join(missing)} not set",
                "set the variable in the sidecar's environment, or write the value")
        return None
    return value


def _webhook_url(channels: _Channels, rules: RuleSet, ctx: Ctx, env: Mapping[str, str]) -> str:
    hook = channels.webhook
    if not _off_unless_enabled("webhook", hook.enabled, rules, ctx):
        return ""
    url = _expanded("webhook", "url", hook.url, ctx, env)
    if url is not None and not url.startswith(("http://", "https://")):
        ctx.add("warning", ctx.positions.get("notification_channels.webhook.url"), "notification_channels.webhook.url",
                f"the webhook is off: '{url}' is not an http(s) URL", "write the URL, e.g. https://host/path")
        return ""
    return url or ""


def _email_target(channels: _Channels, rules: RuleSet, ctx: Ctx, env: Mapping[str, str]) -> EmailTarget | None:
    mail = channels.email
    if not _off_unless_enabled("email", mail.enabled, rules, ctx):
        return None
    host = _expanded("email", "smtp_host", mail.smtp_host, ctx, env)
    port = _expanded("email", "smtp_port", mail.smtp_port, ctx, env)
    sender = _expanded("email", "sender", mail.sender, ctx, env)
    raw = mail.recipients if isinstance(mail.recipients, list) else [mail.recipients]
    recipients = [_expanded("email", "recipients", r, ctx, env) for r in raw]
    if host is None or port is None or sender is None or None in recipients:
        return None
    if not host or not port.isdigit() or not recipients:
        ctx.add("warning", ctx.positions.get("notification_channels.email"), "notification_channels.email",
                f"the email channel is off: it needs smtp_host, a numeric smtp_port and recipients "
                f"(got host '{host}', port '{port}', {len(recipients)} recipient(s))", "fill in all three")
        return None
    return EmailTarget(host=host, port=int(port), recipients=[r for r in recipients if r], sender=sender)


def monitor_config(pack: Pack, state_directory: str, env: Mapping[str, str] | None = None) -> MonitorConfig:
    """Everything the monitor needs from the pack; problems are diagnostics at their line."""
    th = pack.thresholds
    ctx = Ctx(file=th.path if th is not None else "", env=os.environ)
    alerting: MarkedDict | None = None
    scaling: Any = None
    degradation: Any = None
    channels = _Channels()
    if th is not None and th.path:
        doc, diags = load_yaml(Path(th.path))
        ctx.diagnostics.extend(d for d in diags if d.severity == "error")
        if isinstance(doc, MarkedDict):
            raw = doc.get("alerting_rules")
            if isinstance(raw, MarkedDict):
                alerting = raw
            elif raw is not None:
                ctx.add("error", doc.value_pos["alerting_rules"], "alerting_rules", "expected a mapping of keys")
            scaling, degradation = doc.get("scaling_triggers"), doc.get("degradation_procedures")
            raw = doc.get("notification_channels")
            if raw is not None:
                walked = walk(CHANNELS_SPEC, raw, ctx, "notification_channels", doc.value_pos["notification_channels"])
                for name in ("webhook", "email"):  # INFO keeps no position of its own
                    section = raw.get(name) if isinstance(raw, MarkedDict) else None
                    if isinstance(section, MarkedDict):
                        for field in section:
                            ctx.positions.setdefault(f"notification_channels.{name}.{field}", section.value_pos[field])
                if isinstance(walked, _Channels):
                    channels = walked
    rules = build_rules(th, alerting, ctx)
    triggers = build_triggers(scaling, degradation, ctx, th.path if th is not None else "")
    if triggers:
        rules = RuleSet(rules=[*rules.rules, *triggers], levels=rules.levels)
    environ = os.environ if env is None else env
    webhook_url = _webhook_url(channels, rules, ctx, environ)
    email_target = _email_target(channels, rules, ctx, environ)
    log = channels.log
    if not Path(log.log_file).is_absolute():
        log = msgspec.structs.replace(log, log_file=str(Path(state_directory) / log.log_file))
    info = th.monitoring_config if th is not None else None
    interval = DEFAULT_INTERVAL_MS
    if isinstance(info, dict):
        raw_interval = info.get("intervals", {}).get("resource_check")
        if isinstance(raw_interval, int) and raw_interval >= 100:
            interval = raw_interval
    return MonitorConfig(
        rules=rules,
        log=log,
        webhook=channels.webhook,
        webhook_url=webhook_url,
        console=channels.console,
        email=channels.email,
        email_target=email_target,
        interval_ms=interval,
        history=_retention(info, "memory_metrics", DEFAULT_HISTORY),
        alert_history=_retention(info, "alert_history", 1000),
        diagnostics=ctx.diagnostics,
    )
