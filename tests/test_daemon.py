"""The shared daemon over its real Unix socket: real workers, several clients at once.

Each test starts its own daemon in a private runtime dir (tests/daemon_fixtures.py) and stops it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from daemon_fixtures import Daemon, runtime_dir, start_daemon  # noqa: F401  (fixtures)
from sidecar.client import REPO_ROOT, RpcError, SidecarProcess
from sidecar.daemon.client import SocketClient
from sidecar.daemon.writer import ConnectionWriter
from sidecar.daemon.ledger import MachineLedger
from sidecar.daemon.paths import daemon_paths
from sidecar.daemon.service import peer_uid

SLOW_SQL = "SELECT count(*) FROM range(4000000000) t(i) WHERE hash(i) % 7 = 1"
"""Minutes of work: only a cancel ends it within a test's time."""


def status_of(client: SocketClient) -> dict[str, Any]:
    result: dict[str, Any] = client.request("daemon.status", timeout=10)
    return result


def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_two_clients_share_one_daemon_each_with_its_own_session(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon()
    assert stat.S_IMODE(daemon.runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    with daemon.connect("alpha") as a, daemon.connect("beta", profile="development") as b:
        init = a.request("initialize", {"client": {"name": "alpha"}})
        assert init["daemon"]["pid"] == daemon.proc.pid
        assert init["daemon"]["clients"] == 2
        assert init["daemon"]["socket"] == str(daemon.socket)
        # each client's default database is its own: a table one creates the other does not see
        a.request("query.run", {"sql": "CREATE TABLE t AS SELECT 1 AS x"})
        with pytest.raises(RpcError) as missing:
            b.request("query.run", {"sql": "SELECT * FROM t"})
        assert missing.value.code == "SQL_ERROR"
        with ThreadPoolExecutor(2) as pool:
            fa = pool.submit(a.request, "query.run", {"sql": "SELECT sum(x) AS s FROM t"})
            fb = pool.submit(b.request, "query.run", {"sql": "SELECT 7 * 6 AS s"})
            assert fa.result(60)["rows"] == [[1]]
            assert fb.result(60)["rows"] == [[42]]
        assert a.request("config.get")["settings"]["profile"] != b.request("config.get")["settings"]["profile"]
        status = status_of(a)
        assert status["pid"] == daemon.proc.pid
        assert sorted(c["name"] for c in status["clients"]) == ["alpha", "beta"]
        assert status["budget"]["machine_budget_bytes"] > 0


def test_a_disconnect_mid_query_cancels_that_clients_job_only(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon()
    with daemon.connect("stays") as b:
        a = daemon.connect("leaves")
        a.call("query.run", {"sql": SLOW_SQL, "job_id": "kept-job", "progress_token": "a", "partition": {"parts": 0}})
        a.wait_for(lambda n: n.get("method") == "$/progress", timeout=30)
        _, answer = b.call("query.run", {"sql": "SELECT count(*) FROM range(3000000)"})
        a.close()  # the client dies mid-query
        assert answer.result(60)["rows"] == [[3000000]]
        # its job was cancelled: no job runs, its job_id is free again, the other client stays
        until(lambda: status_of(b)["budget"]["running_jobs"] == 0 and len(status_of(b)["clients"]) == 1)
        assert status_of(b)["jobs"] == []
        assert b.request("query.run", {"sql": "SELECT 1", "job_id": "kept-job"})["rows"] == [[1]]
    assert "client 2 (leaves) left: disconnect" in daemon.log_text()


def test_bad_lines_and_a_client_that_never_reads_do_not_disturb_another(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon()
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a raw client that never reads
    flood.connect(str(daemon.socket))
    with flood, daemon.connect("calm") as calm:
        flood.sendall(b"{not json\n" + b"[" + b"1," * 1000 + b"1]\n")
        flood.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "query.rnu"}\n')
        big = b'{"jsonrpc":"2.0","id":"big-%d","method":"query.run","params":{"sql":"SELECT repeat(\'x\', 200) AS s FROM range(10000)"}}\n'
        for number in range(25):  # ~50 MB of answers it never reads pile up on its side
            flood.sendall(big % number)
        for _ in range(3):
            assert calm.request("query.run", {"sql": "SELECT 42 AS x"}, timeout=60)["rows"] == [[42]]
        until(lambda: any(c["running"] == 0 for c in status_of(calm)["clients"] if c["name"] is None), 120)
        assert calm.request("query.run", {"sql": "SELECT 43 AS x"}, timeout=60)["rows"] == [[43]]
        with flood.makefile("rb") as answers:
            first = [answers.readline() for _ in range(3)]
        assert b"PARSE_ERROR" in first[0] and b"METHOD_NOT_FOUND" in first[2], first[:1]


def test_a_stale_socket_is_replaced_and_a_second_daemon_refused(
    start_daemon: Callable[..., Daemon], runtime_dir: Path, data_dir: Path
) -> None:
    os.chmod(runtime_dir, 0o700)
    paths = daemon_paths({"BMAD_DATA_RUNTIME_DIR": str(runtime_dir)}, cwd=data_dir)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(paths.socket))  # what a killed daemon leaves: a socket nobody listens on
    stale.close()
    paths.lock.write_text("999999\n")
    daemon = start_daemon()
    assert "removing the stale socket" in daemon.log_text()
    with daemon.connect() as client:
        assert client.request("query.run", {"sql": "SELECT 1"})["rows"] == [[1]]
    second = start_daemon(wait=False)
    assert second.proc.wait(60) == 3
    assert f"a daemon (pid {daemon.proc.pid}) already serves {daemon.socket}" in second.log_text()
    assert daemon.proc.poll() is None


def test_idle_stop_and_daemon_stop_end_cleanly(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    idle = start_daemon("--idle-timeout", "1")
    with idle.connect() as client:
        client.request("query.run", {"sql": "SELECT 1"})
        time.sleep(1.5)  # a connected client keeps it up, even when it sends nothing
        assert idle.proc.poll() is None
    assert idle.proc.wait(30) == 0
    assert "idle (no client, no job)" in idle.log_text()
    assert not idle.socket.exists()

    daemon = start_daemon()
    with daemon.connect() as client:
        client.request("query.run", {"sql": "SELECT count(*) FROM range(1000)"})
        assert client.request("daemon.stop")["stopping"] is True
    assert daemon.proc.wait(30) == 0
    assert not daemon.socket.exists()
    spill = tmp_path / "spill"
    assert not spill.exists() or list(spill.iterdir()) == []
    assert list((tmp_path / "state").glob("default-*.duckdb*")) == []


def test_stop_when_idle_waits_for_the_other_clients(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon()
    other = daemon.connect("other")
    with daemon.connect("upgrader") as upgrader:
        assert upgrader.request("daemon.stop", {"when_idle": True})["stopping"] is False
    time.sleep(0.5)
    assert daemon.proc.poll() is None  # `other` is still connected
    assert other.request("query.run", {"sql": "SELECT 2"})["rows"] == [[2]]
    other.close()
    assert daemon.proc.wait(30) == 0


def test_a_clients_environment_replaces_the_daemons(
    start_daemon: Callable[..., Daemon], sidecar_env: dict[str, str]
) -> None:
    daemon = start_daemon()
    own = {k: v for k, v in sidecar_env.items() if k.startswith("BMAD_DATA_")}
    with daemon.connect(env={**own, "BMAD_DATA_MAX_ROWS": "3"}) as few, daemon.connect() as many:
        assert few.request("query.run", {"sql": "SELECT * FROM range(10)"})["row_count"] == 3
        assert many.request("query.run", {"sql": "SELECT * FROM range(10)"})["row_count"] == 10
        with pytest.raises(RpcError) as err:
            many.request("initialize", {"env": {"PATH": "/bin"}})
        assert err.value.code == "INVALID_PARAMS"


def test_peer_uid_reads_the_other_ends_uid() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_uid(left) == os.getuid()


def test_a_stdio_sidecar_says_daemon_methods_need_a_daemon(start_sidecar: Callable[..., SidecarProcess]) -> None:
    sidecar = start_sidecar()
    with pytest.raises(RpcError) as err:
        sidecar.request("daemon.status")
    assert err.value.code == "INVALID_REQUEST"
    assert "bmad-data daemon start" in err.value.hint
    assert "daemon" not in sidecar.request("initialize") or sidecar.request("initialize")["daemon"] is None
    sidecar.close()


def test_a_socket_path_too_long_is_refused_with_a_hint(tmp_path: Path) -> None:
    env = {**os.environ, "BMAD_DATA_RUNTIME_DIR": str(tmp_path / ("d" * 120)), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "daemon"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "at most 107" in done.stderr and "BMAD_DATA_RUNTIME_DIR" in done.stderr


def test_a_departed_clients_worker_serves_the_next_client_warm_with_a_fresh_database(
    start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = start_daemon()
    with daemon.connect("first") as first:
        first.request("query.run", {"sql": "CREATE TABLE mine AS SELECT 1 AS x"})
    until(lambda: not list((tmp_path / "state").glob("default-*.c1.duckdb*")))  # its database went with it
    with daemon.connect("second") as second:
        with pytest.raises(RpcError):
            second.request("query.run", {"sql": "SELECT * FROM mine"})
    opened = re.findall(r"worker\[(\d+)\] sidecar\.engine\.executor: opened database .*\.c(\d)\.duckdb", daemon.log_text())
    assert [client for _, client in opened] == ["1", "2"]
    assert opened[0][0] == opened[1][0], "the second client should get the first one's worker, warm"


def test_daemons_of_two_directories_share_one_machine_budget(
    start_daemon: Callable[..., Daemon], tmp_path: Path, data_dir: Path
) -> None:
    other_dir = data_dir / "other-project"
    other_dir.mkdir()
    budget = {"BMAD_DATA_MACHINE_BUDGET": "1GB"}
    first, second = start_daemon(**budget), start_daemon(cwd=other_dir, **budget)
    assert first.socket != second.socket
    whole = {"partition": {"parts": 0}, "settings": {"memory_limit": "700MB"}}
    with first.connect("one") as one, second.connect("two") as two:
        big_id, big = one.call("query.run", {"sql": SLOW_SQL, "progress_token": "big", **whole})
        one.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["value"]["phase"] == "running", 60)
        _, small = two.call("query.run", {"sql": "SELECT 42 AS x", "progress_token": "small", **whole})
        two.wait_for(lambda n: n.get("method") == "$/progress" and n["params"]["value"]["phase"] == "queued", 60)
        assert status_of(two)["budget"]["elsewhere_bytes"] >= 700 * 1000**2
        assert not small.done()  # it waits for the other directory's job, not for anything of its own
        one.notify("$/cancelRequest", {"id": big_id})
        assert small.result(60)["rows"] == [[42]]
        with pytest.raises(RpcError):
            big.result(60)
    assert (first.runtime / "ledger").exists()


def test_the_ledger_ignores_daemons_that_are_gone(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    path.write_text(f"999999999 4096\n{os.getpid()} 10\n")
    mine, theirs = MachineLedger(path), MachineLedger(path, pid=os.getppid())
    assert mine.others() == 0  # pid 999999999 does not run; our own line is not "others"
    with theirs.locked() as book:
        book.set(2048)
    assert mine.others() == 2048
    assert "999999999" not in path.read_text()
    theirs.leave()
    assert mine.others() == 0


def test_clients_with_different_config_dirs_and_an_edit_that_reloads_one_of_them(
    start_daemon: Callable[..., Daemon], pack_dir: Path, tmp_path: Path
) -> None:
    other_pack = tmp_path / "other-pack"
    shutil.copytree(pack_dir, other_pack)
    daemon = start_daemon()
    with daemon.connect("edited", config_dir=str(pack_dir), profile="development") as edited, daemon.connect(
        "untouched", config_dir=str(other_pack), profile="production_small"
    ) as untouched:
        assert edited.request("config.get")["config_dir"] == str(pack_dir)
        assert untouched.request("config.get")["config_dir"] == str(other_pack)
        assert edited.request("config.get")["profile"] == "development"
        assert untouched.request("config.get")["profile"] == "production_small"
        flags = pack_dir / "config" / "feature-flags.yaml"
        flags.write_text(flags.read_text().replace("  duckdb_analytics:\n    enabled: true", "  duckdb_analytics:\n    enabled: false", 1))
        changed = edited.wait_for(lambda n: n.get("method") == "config/changed", 30)
        assert changed["params"]["config_dir"] == str(pack_dir)
        with pytest.raises(RpcError) as off:
            edited.request("query.run", {"sql": "SELECT 1"})
        assert off.value.code == "FEATURE_DISABLED"
        assert untouched.request("query.run", {"sql": "SELECT 2"})["rows"] == [[2]]
        assert not [n for n in untouched.notifications if str(n.get("method", "")).startswith("config/")]


def test_a_client_leaving_too_many_answers_unread_is_dropped_and_the_sender_never_blocks() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # `theirs` never reads
    dropped = threading.Event()
    writer = ConnectionWriter(ours, dropped.set, name="t", max_pending=4 * 1024 * 1024)
    with ours, theirs:
        line = {"jsonrpc": "2.0", "method": "$/log", "params": {"text": "x" * 100_000}}
        started = time.monotonic()
        sent = [writer.send(line) for _ in range(200)]  # 20 MB: far more than the socket buffer holds
        assert time.monotonic() - started < 5, "send() waited for the client"
        assert dropped.is_set() and sent[0] and not sent[-1]
        assert writer.closed
        writer.finish(1.0)
