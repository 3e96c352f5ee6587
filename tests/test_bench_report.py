"""Reports of real runs: Markdown, self-contained HTML and JSON; charts when matplotlib (the `bench` extra) is there."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.bench.suite.render import have_matplotlib
from sidecar.client import RpcError, SidecarProcess

RUN = {"suite": "query", "questions": ["groupby_low"], "sizes": ["1MB", "2MB"], "repeat": 1}
NEEDS_EXTRA = "needs matplotlib, from the optional `bench` extra (pip install 'bmad-data-sidecar[bench]')"


@pytest.fixture
def sc(start_sidecar: Callable[..., SidecarProcess]) -> SidecarProcess:
    process = start_sidecar()
    process.request("initialize", {"client": {"name": "test"}})
    return process


@pytest.mark.timeout(300)
def test_json_and_markdown_reports_hold_the_tables(sc: SidecarProcess, data_dir: Path) -> None:
    r = sc.request(
        "bench.run", {**RUN, "label": "a", "report": {"path": str(data_dir / "run.json")}}, timeout=240
    )
    saved = json.loads((data_dir / "run.json").read_text())
    assert saved["run"]["run_id"] == r["run"]["run_id"] and len(saved["cases"]) == 2
    sc.request("bench.run", {**RUN, "label": "b"}, timeout=240)
    c = sc.request("bench.compare", {"baseline": "a", "candidate": "b", "report": {"path": str(data_dir / "c.md")}},
                   timeout=240)  # fmt: skip
    text = (data_dir / "c.md").read_text()
    assert c["report"]["format"] == "md" and "## Comparison" in text
    assert (
        re.search(r"\| groupby_low \| groupby_low \| 1.00 MB \|", text)
        and "| groupby_low | 2.00 MB |" in text
    )
    if not have_matplotlib():
        assert c["report"]["charts"] == 0 and "matplotlib" in c["report"]["warnings"][0] and "[bench]" in text


def test_a_report_that_cannot_be_written_is_refused_before_anything_runs(sc: SidecarProcess, data_dir: Path) -> None:
    # a 1 GB run takes minutes: learning at its end that the report path was wrong loses them
    for path, code in [("/etc/report.md", "ACCESS_DENIED"), (str(data_dir / "report.txt"), "INVALID_PARAMS"),
                       (str(data_dir / "missing" / "report.md"), "INPUT_ERROR")]:  # fmt: skip
        with pytest.raises(RpcError) as err:
            sc.request("bench.run", {**RUN, "report": {"path": path}}, timeout=240)
        assert err.value.code == code, path
        with pytest.raises(RpcError) as err:
            sc.request("bench.compare", {"baseline": "nothing-yet", "report": {"path": path}}, timeout=240)
        assert err.value.code == code, path
    assert sc.request("bench.list", {})["runs"] == []


@pytest.mark.skipif(not have_matplotlib(), reason=NEEDS_EXTRA)
@pytest.mark.timeout(300)
def test_html_report_embeds_its_charts(sc: SidecarProcess, data_dir: Path) -> None:
    r = sc.request("bench.run", {**RUN, "report": {"path": str(data_dir / "r.html")}}, timeout=240)
    page = (data_dir / "r.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert r["report"]["charts"] == len(images) == 2  # time against size, ratio per question
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http" not in page.replace("https://", "")  # self-contained: nothing fetched


@pytest.mark.skipif(not have_matplotlib(), reason=NEEDS_EXTRA)
@pytest.mark.timeout(300)
def test_memory_suite_report_charts_rss_and_spill_against_budget(sc: SidecarProcess, data_dir: Path) -> None:
    params = {"suite": "memory", "questions": ["sort"], "sizes": ["30MB"], "repeat": 1,
              "report": {"path": str(data_dir / "m.md")}}  # fmt: skip
    sc.request("bench.run", params, timeout=240)
    charts = sorted(p.name for p in (data_dir / "m-charts").iterdir())
    assert charts == ["peak_rss_vs_budget.png", "ratio_per_question.png", "spill_vs_budget.png"]
