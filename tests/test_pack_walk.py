"""The expansion pack tells the truth: every `bmad-data ...` command it tells an agent to run is run.

Each command found in the pack's agents, tasks, checklists, workflows, templates and knowledge
(in backticks, or on a line of a fenced block) has its placeholders replaced with sample data
that DuckDB writes into a temporary workspace, runs through the real CLI (`node
bmad_bridge/bin/bmad-data.js ... --json`, a real sidecar) and must exit as the pack says it will.
A file's commands run in their order in one fresh copy of the workspace, as an agent following
the file would run them (a task's check reads what its previous step wrote). `data/bmad-data-cli-reference.md` is a syntax table (its
`<sql>` is not a query) whose commands and options bmad_bridge/tests/pack.test.js checks.

Commands of a subcommand the CLI does not have yet (`convert`, `partition`) are skipped, with the
reason, only while `bmad-data --help` does not list it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sidecar.client import REPO_ROOT

PACK = REPO_ROOT / "expansion-pack"
CLI = REPO_ROOT / "bmad_bridge" / "bin" / "bmad-data.js"
SYNTAX_ONLY = {"data/bmad-data-cli-reference.md"}
WALKED = ("agents/*.md", "tasks/*.md", "checklists/*.md", "workflows/*.yaml", "templates/*.yaml", "data/*.md", "README.md")

PLACEHOLDERS = {
    "<path>": "data/events.parquet",
    "{{path}}": "data/events.parquet",
    "<threads>": "1",
    "<name>": "walk-job",
    "{job}": "walk_job",
    "{dataset}": "events",
    "<suite>": "smoke",
    "<sizes>": "1MB",
}
"""Every placeholder a pack command may hold, and the sample it stands for in the workspace."""
PLACEHOLDER = re.compile(r"<[A-Za-z_][\w-]*>|\{\{?[A-Za-z_]\w*\}?\}")

PENDING = {"convert", "partition"}
"""Subcommands the pack's tasks use that arrive with the CLI branch of issue 10."""

def commands_in(text: str) -> list[tuple[int, str]]:
    """(line, command) of every `bmad-data ...` in backticks or on a fenced block's line.

    >>> commands_in("Run `bmad-data status --json` now.\\n```\\n$ bmad-data doctor\\n```")
    [(1, 'bmad-data status --json'), (3, 'bmad-data doctor')]
    """
    found = [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in re.finditer(r"`(bmad-data [^`]+)`", text)]
    for block in re.finditer(r"```[a-z]*\n([\s\S]*?)```", text):
        for m in re.finditer(r"^[ \t]*(?:\$ )?(bmad-data [^\n`]+)$", block.group(1), re.M):
            found.append((text.count("\n", 0, block.start(1) + m.start(1)) + 1, m.group(1)))
    return sorted(found)


def walked_files() -> list[Path]:
    files = {f for pattern in WALKED for f in PACK.glob(pattern)}
    return sorted(f for f in files if f.relative_to(PACK).as_posix() not in SYNTAX_ONLY)


def is_invocation(command: str) -> bool:
    """A command to run, not a name in prose: it carries `--json` or an argument of its own.

    >>> [is_invocation(c) for c in ("bmad-data query --save", "bmad-data cleanup --json", "bmad-data analyze x.csv")]
    [False, True, True]
    """
    argv = shlex.split(command)[2:]
    return "--json" in argv or any(not a.startswith("-") for a in argv)


def pack_commands() -> list[tuple[str, int, str]]:
    """(file relative to the pack, line, command) for every command the walked files tell to run."""
    return [
        (f.relative_to(PACK).as_posix(), line, cmd)
        for f in walked_files()
        for line, cmd in commands_in(f.read_text(encoding="utf-8"))
        if is_invocation(cmd)
    ]


def substitute(command: str) -> list[str]:
    """The command's arguments after `bmad-data`, placeholders replaced, `--json` added."""
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    argv = shlex.split(command)[1:]
    return argv if "--json" in argv else [*argv, "--json"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "walked" in metafunc.fixturenames:
        files = sorted({f for f, _, _ in pack_commands()})
        metafunc.parametrize(
            "walked", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_WALKS else f for f in files]
        )


SLOW_WALKS = {"tasks/run-benchmark.md"}
"""Walks of a minute or more, run by scripts/test-slow.sh: the benchmark task runs whole suites (the CLI's
`benchmark` command itself is covered in CI by tests/test_bench_method.py and bmad_bridge/tests/benchmark.test.js)."""


# -- the workspace -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the pack's example commands name, written by DuckDB."""
    root = tmp_path_factory.mktemp("pack-walk")
    for sub in ("data/raw", "out"):
        (root / sub).mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE events AS SELECT i AS event_id, i % 500 AS user_id, "
        "['view', 'click', 'buy'][i % 3 + 1] AS kind, ['EU', 'US', 'APAC'][i % 3 + 1] AS region, "
        "round((i % 997) * 0.37, 2) AS amount, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE AS ts "
        "FROM range(20000) t(i)"
    )
    con.execute(f"COPY events TO '{root / 'data/events.parquet'}' (FORMAT parquet)")
    con.execute(
        f"COPY (SELECT region, 2024 + event_id % 2 AS year, amount, ts::DATE AS order_date FROM events "
        f"WHERE event_id < 3000) TO '{root / 'data/sales.csv'}' (HEADER)"
    )
    con.execute(f"COPY (SELECT * FROM events WHERE event_id < 500) TO '{root / 'data/raw/a.csv'}' (HEADER)")
    con.execute(f"COPY (SELECT * FROM events WHERE event_id >= 19500) TO '{root / 'data/raw/b.json'}' (FORMAT json)")
    con.execute(f"COPY (SELECT user_id, sum(amount) AS revenue FROM events GROUP BY user_id) TO '{root / 'out/walk_job.parquet'}' (FORMAT parquet)")
    # analyze-dataset.md's findings: a semicolon CSV with a short row, Parquet files whose columns differ
    (root / "data/export.csv").write_text("id;amount;city\n1;9.5;Oslo\n2;3.25\n3;7;Rome\n")
    con.execute(f"COPY (SELECT 1 AS id) TO '{root / 'data/2024-01.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT 2 AS id, 'b' AS name) TO '{root / 'data/2024-02.parquet'}' (FORMAT parquet)")
    (root / "job.sql").write_text("SELECT user_id, sum(amount) AS revenue FROM 'data/events.parquet' GROUP BY user_id\n")
    (root / "report.sql").write_text("SELECT * FROM 'data/events.parquet' WHERE amount > 100\n")
    return root


@pytest.fixture
def sandbox(workspace: Path, tmp_path: Path) -> Path:
    """A fresh copy of the workspace: every command starts from the same files."""
    target = tmp_path / "work"
    shutil.copytree(workspace, target)
    return target


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_PYTHON=sys.executable,
        BMAD_DATA_CONFIG_DIR=str(PACK),
        BMAD_DATA_STATE_DIR=str(tmp_path / "state"),
        BMAD_DATA_TEMP_DIRECTORY=str(tmp_path / "spill"),
        BMAD_DATA_NO_DAEMON="1",  # a private sidecar per command: no daemon outlives the test
    )
    return env


STATELESS = {"status", "doctor", "cleanup"}
"""Subcommands whose answer does not depend on the workspace or on the commands run before them
in a fresh state directory: the walk runs each such command line once and reuses its answer."""
_answers: dict[tuple[str, ...], tuple[int, list[dict[str, Any]], str]] = {}


def run_cli(argv: list[str], cwd: Path, tmp_path: Path) -> tuple[int, list[dict[str, Any]], str]:
    """Run the real CLI; (exit code, stdout's JSON lines, stderr). Every stdout line must be JSON."""
    if argv[0] in STATELESS and tuple(argv) in _answers:
        return _answers[tuple(argv)]
    proc = subprocess.run(
        ["node", str(CLI), *argv], cwd=cwd, env=cli_env(tmp_path), capture_output=True, text=True, timeout=100
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    answer = proc.returncode, lines, proc.stderr
    if argv[0] in STATELESS:
        _answers[tuple(argv)] = answer
    return answer


@functools.cache
def cli_commands() -> frozenset[str]:
    """The subcommands `bmad-data --help` lists."""
    out = subprocess.run(["node", str(CLI), "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    listing = out.split("Commands:", 1)[1]
    return frozenset(m.group(1) for m in re.finditer(r"^  ([a-z][\w-]*)\b", listing, re.M))


def unlisted(name: str) -> str | None:
    """The skip reason for a pending subcommand the CLI does not have yet, else None."""
    if name in PENDING and name not in cli_commands():
        return f"`bmad-data --help` does not list the {name} command"
    return None


def skip_unless_listed(name: str) -> None:
    reason = unlisted(name)
    if reason:
        pytest.skip(reason)


# -- the walk ----------------------------------------------------------------------------


def test_the_walk_finds_the_commands_of_every_task():
    files = {f for f, _, _ in pack_commands()}
    tasks = {f"tasks/{p.name}" for p in (PACK / "tasks").glob("*.md")}
    assert tasks <= files, f"tasks with no bmad-data command to walk: {sorted(tasks - files)}"
    assert len(pack_commands()) >= 40


def test_every_placeholder_in_a_pack_command_is_one_the_walk_knows():
    unknown = {
        (f"{f}:{line}", found)
        for f, line, cmd in pack_commands()
        for found in PLACEHOLDER.findall(cmd)
        if found not in PLACEHOLDERS
    }
    assert not unknown, f"add these to PLACEHOLDERS with a sample (or rewrite the command): {sorted(unknown)}"
    for _, _, cmd in pack_commands():
        assert not PLACEHOLDER.search(" ".join(substitute(cmd))), cmd


def test_the_placeholder_check_catches_a_new_placeholder():
    assert PLACEHOLDER.findall("bmad-data convert <input> out/{table}.parquet --json") == ["<input>", "{table}"]


def test_pack_commands_run_as_the_pack_says(walked, sandbox, tmp_path):
    """Each command of the file in turn; a pending command the CLI lacks is left out, and then a
    later command of the file that fails (it may read what the pending one writes) skips the
    file with that reason instead of failing it."""
    skipped: list[str] = []
    for line, command, argv in [(line, cmd, substitute(cmd)) for f, line, cmd in pack_commands() if f == walked]:
        reason = unlisted(argv[0])
        if reason:
            skipped.append(reason)
            continue
        code, lines, stderr = run_cli(argv, sandbox, tmp_path)
        where = f"{walked}:{line} `{command}`"
        try:
            assert lines, f"{where} printed nothing on stdout; stderr: {stderr[-2000:]}"
            last = lines[-1]
            assert (code, last["type"]) == (0, "result"), f"{where} exited {code}: {last}"
            assert last["command"] == argv[0]
        except AssertionError:
            if skipped:
                pytest.skip(skipped[0])
            raise
    if skipped:
        pytest.skip(skipped[0])  # the file's other commands ran as it says


# -- claims the tasks make, run ----------------------------------------------------------


def test_the_default_database_is_private_to_one_command_and_removed(sandbox, tmp_path):
    """run-query-safely.md: without --database, tables are gone for the next command."""
    code, _, _ = run_cli(["query", "CREATE TABLE kept AS SELECT 1 AS x", "--json"], sandbox, tmp_path)
    assert code == 0
    code, lines, _ = run_cli(["query", "SELECT * FROM kept", "--json"], sandbox, tmp_path)
    assert (code, lines[-1]["error"]["code"]) == (8, "SQL_ERROR")
    assert list((tmp_path / "state").glob("default-*.duckdb*")) == []
    assert "removes when it ends" in (PACK / "tasks/run-query-safely.md").read_text(encoding="utf-8")


def test_copy_to_through_query_replaces_a_file_without_asking_and_save_refuses(sandbox, tmp_path):
    """The tasks steer agents from COPY ... TO to --save/convert/partition: this is why."""
    target = sandbox / "out" / "walk_job.parquet"
    code, _, _ = run_cli(["query", f"COPY (SELECT 42 AS answer) TO '{target}' (FORMAT parquet)", "--json"], sandbox, tmp_path)
    assert code == 0 and duckdb.execute(f"SELECT * FROM '{target}'").fetchall() == [(42,)]
    code, lines, _ = run_cli(["query", "SELECT 7 AS seven", "--save", str(target), "--json"], sandbox, tmp_path)
    assert (code, lines[-1]["error"]["code"]) == (7, "INPUT_ERROR")
    assert duckdb.execute(f"SELECT * FROM '{target}'").fetchall() == [(42,)]


def test_stats_estimate_is_there_for_a_splittable_select_with_the_fields_the_pack_explains(sandbox, tmp_path):
    grouped = "SELECT i % 1000 AS k, count(*) AS n FROM range(200000) t(i) GROUP BY k"
    _, lines, _ = run_cli(["query", grouped, "--json"], sandbox, tmp_path)
    estimate = lines[-1]["data"]["stats"]["estimate"]
    assert {"bytes", "limit_bytes", "parts", "basis", "input_rows", "groups"} <= set(estimate)
    # as the task says: no estimate for a statement that cannot split, nor for a SELECT that reads
    # only files far smaller than DuckDB's limit (job.sql: a GROUP BY over a small Parquet file)
    for sql in (["SELECT 1 AS one"], ["--file", "job.sql"]):
        _, lines, _ = run_cli(["query", *sql, "--json"], sandbox, tmp_path)
        assert "estimate" not in lines[-1]["data"]["stats"], sql


def run_task_command(task: str, subcommand: str, sandbox: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """Run the task's first `bmad-data <subcommand>` command; (its arguments, its output path)."""
    found = [substitute(cmd) for f, _, cmd in pack_commands() if f == task and shlex.split(cmd)[1] == subcommand]
    assert found, f"{task} has no `bmad-data {subcommand}` command"
    skip_unless_listed(subcommand)
    code, lines, _ = run_cli(found[0], sandbox, tmp_path)
    assert code == 0, lines[-1:]
    return found[0], sandbox / found[0][2]


def test_convert_as_the_task_says_never_replaces_an_output_without_overwrite(sandbox, tmp_path):
    argv, output = run_task_command("tasks/convert-dataset.md", "convert", sandbox, tmp_path)
    rows = duckdb.execute(f"SELECT count(*) FROM '{output}'").fetchone()
    assert rows == duckdb.execute(f"SELECT count(*) FROM '{sandbox / argv[1]}'").fetchone()
    before = output.read_bytes()
    (sandbox / argv[1]).write_text("region,year,amount,order_date\nXX,1999,1.0,1999-01-01\n")
    code, lines, _ = run_cli(argv, sandbox, tmp_path)
    assert (code, lines[-1]["error"]["code"]) == (7, "INPUT_ERROR"), "every output exists: nothing converted"
    assert output.read_bytes() == before, "an existing output was replaced without --overwrite"
    code, _, _ = run_cli([*argv, "--overwrite"], sandbox, tmp_path)
    assert code == 0 and duckdb.execute(f"SELECT count(*) FROM '{output}'").fetchone() == (1,)


def test_partition_as_the_task_says_writes_hive_directories_and_never_writes_into_a_finished_or_foreign_one(sandbox, tmp_path):
    argv, out = run_task_command("tasks/partition-dataset.md", "partition", sandbox, tmp_path)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["region=APAC", "region=EU", "region=US"]
    assert any((out / ".bmad-done").iterdir())
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.parquet")}
    code, lines, _ = run_cli(argv, sandbox, tmp_path)
    assert (code, lines[-1]["error"]["code"]) == (7, "INPUT_ERROR"), "every input finished: nothing written"
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.parquet")} == files
    foreign = sandbox / "out" / "someone-elses"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a partition run's\n")
    code, lines, _ = run_cli([argv[0], argv[1], str(foreign), *argv[3:]], sandbox, tmp_path)
    assert (code, lines[-1]["error"]["code"]) == (7, "INPUT_ERROR") and (foreign / "notes.txt").exists()


# -- references ----------------------------------------------------------------------------


def core_files() -> dict[str, str]:
    """The BMad core files the pack README documents: {'tasks/create-doc.md': 'common/tasks/', ...}."""
    text = (PACK / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `([a-z-]+/[\w.-]+)` \| `([\w/-]+)` \|", text, re.M))


def test_every_file_the_pack_names_is_in_the_pack_or_a_documented_bmad_core_file():
    in_pack = {p.relative_to(PACK).as_posix() for p in PACK.rglob("*") if p.is_file()}
    names = {Path(p).name for p in in_pack}
    core = core_files()
    core_names = {Path(p).name for p in core}
    missing = []
    for file in sorted(PACK.rglob("*")):
        if file.suffix not in (".md", ".yaml"):
            continue
        for ref in re.findall(r"[\w./{}-]+\.(?:md|yaml)\b", file.read_text(encoding="utf-8")):
            if "{" in ref or ref.startswith("."):
                continue  # an output the pack writes (docs/data/{dataset}-profile.md), or a hidden path
            if ref.startswith("docs/"):
                ok = (REPO_ROOT / ref).is_file()  # the bmad-data repository's own docs
            elif "/" in ref:
                ok = ref in in_pack or ref in core
            else:
                ok = ref in names or ref in core_names
            if not ok:
                missing.append(f"{file.relative_to(PACK)}: {ref}")
    assert not missing, missing


def test_the_documented_core_files_are_the_ones_the_agent_lists_and_the_tests_accept():
    core = core_files()
    assert {"tasks/create-doc.md", "tasks/execute-checklist.md"} <= set(core)
    agent = (PACK / "agents" / "data-engineer.md").read_text(encoding="utf-8")
    for path in core:
        kind, name = path.split("/")
        assert not (PACK / path).exists(), f"{path} is shipped by the pack, not core"
        if kind != "agents":  # bmad-build.test.js proves the builder finds every listed dependency in core
            assert re.search(rf"^  {kind}:\n(?:    - .*\n)*?    - {re.escape(name)}$", agent, re.M), f"{path} is no dependency"
    accepted = (REPO_ROOT / "bmad_bridge" / "tests" / "pack.test.js").read_text(encoding="utf-8")
    block = accepted.split("const BMAD_PROVIDED = new Set([", 1)[1].split("]);", 1)[0]
    assert set(re.findall(r"'([^']+)'", block)) == set(core)


# -- the fields and outputs the pack names ---------------------------------------------------

JSON_TYPES = {"progress", "warning", "result", "error", "check", "sample"}
"""The `type`s of a --json line, as the data engineer's rules list them."""


def named_fields() -> set[tuple[str, str]]:
    """(file, `a.b.c`) for every dotted JSON field the walked files name in backticks."""
    found = set()
    for f in walked_files():
        for name in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", f.read_text(encoding="utf-8")):
            if not re.search(r"\.(md|yaml|parquet|sql|csv|json)$", name):
                found.add((f.relative_to(PACK).as_posix(), name))
    return found


def test_every_json_field_the_pack_names_is_in_real_output(sandbox, tmp_path):
    """`settings.*`/`resources.*` from status, `stats.*` from a query, `data.*` from analyze,
    `error.*`/`details.*` from real failures: out of memory, an unsplittable --parts, bad SQL."""
    def last(*argv: str) -> dict[str, Any]:
        return run_cli([*argv, "--json"], sandbox, tmp_path)[1][-1]

    status = last("status")["data"]
    failures = [
        last("query", "SELECT list(i ORDER BY i DESC)[1] FROM range(60000000) t(i)", "--memory-limit", "300MB"),
        last("query", "SELECT * FROM 'data/events.parquet'", "--parts", "4"),
        last("query", "SELEC 1"),
    ]
    assert [f["error"]["code"] for f in failures] == ["OUT_OF_MEMORY", "SQL_ERROR", "SQL_ERROR"]
    roots = {
        "settings": [status["settings"]],
        "resources": [status["resources"]],
        # a GROUP BY over generated rows, so the estimate is there (job.sql's small file gets none)
        "stats": [last("query", "SELECT i % 1000 AS k, count(*) AS n FROM range(200000) t(i) GROUP BY k")["data"]["stats"]],
        "data": [
            last("analyze", "data/events.parquet")["data"],
            last("analyze", "data/export.csv", "--delimiter", ";", "--csv", "null_padding=true")["data"],
        ],
        "error": [f["error"] for f in failures],
        "details": [f["error"]["details"] for f in failures],
    }

    def has(value: Any, path: list[str]) -> bool:
        if not path:
            return True
        return isinstance(value, dict) and path[0] in value and has(value[path[0]], path[1:])

    fields = named_fields()
    assert ("tasks/plan-larger-than-memory-job.md", "stats.estimate") in fields
    unknown = sorted(
        f"{f}: {name}" for f, name in fields
        if name.split(".")[0] in roots and not any(has(v, name.split(".")[1:]) for v in roots[name.split(".")[0]])
    )
    assert not unknown, unknown
    assert {name.split(".")[0] for _, name in fields} <= set(roots), "a field under a root the test does not know"


def test_stdout_line_types_are_the_ones_the_agent_lists(sandbox, tmp_path):
    agent = (PACK / "agents" / "data-engineer.md").read_text(encoding="utf-8")
    assert "(progress, warning, result, error, check, sample)" in agent
    seen = set()
    for argv in (["doctor"], ["monitor", "--count", "1", "--interval", "1"], ["query", "--file", "job.sql"], ["query", "SELEC 1"]):
        seen |= {line["type"] for line in run_cli([*argv, "--json"], sandbox, tmp_path)[1]}
    assert {"check", "sample", "result", "error", "progress"} <= seen <= JSON_TYPES


@pytest.mark.parametrize(
    "sql",
    ["SET threads = 1", "ATTACH 'other.duckdb' AS other", "LOAD httpfs", "SELECT * FROM read_csv('/etc/passwd')"],
)
def test_what_run_query_safely_says_is_access_denied_is(sql, sandbox, tmp_path):
    code, lines, _ = run_cli(["query", sql, "--json"], sandbox, tmp_path)
    assert (code, lines[-1]["error"]["code"]) == (6, "ACCESS_DENIED")


def test_every_query_has_the_deadline_run_query_safely_names(sandbox, tmp_path):
    shipped = re.search(r"timeout_threshold: (\d+)", (PACK / "data/resource-thresholds-config.yaml").read_text(encoding="utf-8"))
    assert shipped and int(shipped.group(1)) == 300_000
    assert "300,000 ms = 5 minutes as shipped" in (PACK / "tasks/run-query-safely.md").read_text(encoding="utf-8")
    assert run_cli(["status", "--json"], sandbox, tmp_path)[1][-1]["data"]["settings"]["timeout_ms"] == 300_000


def test_a_jobs_ceiling_and_duckdb_limit_are_what_the_knowledge_base_says(sandbox, tmp_path):
    kb = (PACK / "data/duckdb-memory-kb.md").read_text(encoding="utf-8")
    assert "max(ceiling / 2, (ceiling − 256 MiB) / 1.10)" in kb

    def duckdb_limit(ceiling: int) -> int:
        return int(max(ceiling / 2, (ceiling - 256 * 2**20) / 1.10))

    settings = run_cli(["status", "--json"], sandbox, tmp_path)[1][-1]["data"]["settings"]
    for extra, ceiling in (
        (["--memory-limit", "1GB"], 10**9),
        ([], min(settings["memory_budget_bytes"], settings["machine_budget_bytes"] // settings["max_concurrent_jobs"])),
    ):
        attempt = run_cli(["query", "SELECT 1 AS one", *extra, "--json"], sandbox, tmp_path)[1][-1]["data"]["stats"]["attempts"][0]
        assert attempt["ceiling_bytes"] == ceiling
        assert abs(attempt["duckdb_memory_limit_bytes"] - duckdb_limit(ceiling)) <= 1


def test_every_task_has_the_regular_structure_a_generator_can_rely_on():
    """Header comment, one title, Purpose, Inputs, Instructions, numbered steps: the BMad v6
    module is generated from these files, section by section."""
    for task in sorted((PACK / "tasks").glob("*.md")):
        text = task.read_text(encoding="utf-8")
        assert text.startswith("<!-- Powered by BMAD™ Core -->\n\n# "), task.name
        assert len(re.findall(r"^# ", text, re.M)) == 1, task.name
        assert re.findall(r"^## (.+)$", text, re.M) == ["Purpose", "Inputs", "Instructions"], task.name
        steps = re.findall(r"^### (\d+)\. ", text, re.M)
        assert steps == [str(n) for n in range(1, len(steps) + 1)] and len(steps) >= 3, task.name
