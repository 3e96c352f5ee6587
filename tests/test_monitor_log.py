"""The alert log channel: one JSON object per line, rotated by size and by day."""

from __future__ import annotations

import datetime as dt
import json
import os

from sidecar.monitor.alert_log import AlertLog
from sidecar.monitor.config import LogChannel
from sidecar.monitor.events import AlertEvent


def _event(i: int) -> AlertEvent:
    return AlertEvent(
        id=f"r-{i}", rule="r", severity="warning", state="firing", metric="m", value=1.0,
        threshold=1.0, message="x" * 50, actions_taken=[], at=i,
    )


def test_rotates_by_size_keeping_whole_lines(tmp_path):
    path = tmp_path / "logs" / "alerts.log"
    channel = AlertLog(LogChannel(log_file=str(path), rotation="size", max_size=600))
    for i in range(20):
        channel.write(_event(i))
    channel.close()
    files = sorted(tmp_path.joinpath("logs").iterdir())
    assert len(files) >= 3 and all(f.stat().st_size <= 600 for f in files)
    ids = sorted(json.loads(line)["at"] for f in files for line in f.read_text().splitlines())
    assert ids == list(range(20))  # nothing lost, nothing torn


def test_rotates_daily_to_a_dated_name(tmp_path):
    path = tmp_path / "alerts.log"
    path.write_text(json.dumps({"old": True}) + "\n")
    yesterday = dt.datetime.now() - dt.timedelta(days=1)
    os.utime(path, (yesterday.timestamp(), yesterday.timestamp()))
    channel = AlertLog(LogChannel(log_file=str(path), rotation="daily"))
    channel.write(_event(1))
    channel.close()
    assert (tmp_path / f"alerts.log.{yesterday.date().isoformat()}").read_text() == '{"old": true}\n'
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["r-1"]
