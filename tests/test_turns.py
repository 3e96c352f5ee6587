"""Leader/follower reading (sidecar/protocol/turns.py): the thread that reads a work line runs
it, another thread reads on meanwhile, and the end of input or a stop ends the serving."""

from __future__ import annotations

import queue
import threading

from sidecar.protocol.turns import Turns


def lines_from(q: queue.Queue):
    while (line := q.get()) is not None:
        yield line


class Harness:
    def __init__(self, max_threads=4):
        self.q: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.release = threading.Event()
        self.log: list[tuple[str, str, int, bool]] = []
        self.lock = threading.Lock()
        self.turns = Turns(lines_from(self.q), self.handle, stop=self.stop, max_threads=max_threads)
        self.thread = threading.Thread(target=self.turns.serve, daemon=True)

    def handle(self, line):
        kind, _, name = line.partition(":")
        reader = threading.get_ident()
        kept = kind == "work" and self.turns.pass_turn()
        with self.lock:
            self.log.append(("read", name, reader, kept))
        if kind == "work" and kept:
            self.run(name, kept)
        elif kind == "work":  # as the dispatcher does: its pool runs it
            threading.Thread(target=self.run, args=(name, kept), daemon=True).start()
        elif kind == "stop":
            self.stop.set()

    def run(self, name, kept):
        self.release.wait(30)
        with self.lock:
            self.log.append(("ran", name, threading.get_ident(), kept))

    def seen(self, name, event="read"):
        with self.lock:
            return [entry for entry in self.log if entry[:2] == (event, name)]


def wait_for(predicate, timeout=10):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return False


def test_a_work_line_runs_on_its_reader_while_another_thread_reads_on():
    h = Harness()
    h.thread.start()
    h.q.put("work:a")
    h.q.put("work:b")
    h.q.put("cheap:c")  # read while a and b are still running: someone is always reading
    assert wait_for(lambda: h.seen("c"))
    (_, _, reader_a, kept_a), (_, _, reader_b, kept_b) = h.seen("a")[0], h.seen("b")[0]
    assert kept_a and kept_b and reader_a != reader_b
    h.release.set()
    assert wait_for(lambda: h.seen("a", "ran") and h.seen("b", "ran"))
    assert h.seen("a", "ran")[0][2] == reader_a and h.seen("b", "ran")[0][2] == reader_b
    h.q.put(None)
    h.thread.join(10)
    assert not h.thread.is_alive() and h.turns.finished.is_set()


def test_past_the_thread_limit_the_reader_keeps_reading_and_the_caller_uses_its_pool():
    h = Harness(max_threads=2)
    h.thread.start()
    for name in "abc":
        h.q.put(f"work:{name}")
    assert wait_for(lambda: h.seen("c"))
    # two threads: a's reader passed reading on to the second, which cannot pass it on again
    assert [h.seen(n)[0][3] for n in "abc"] == [True, False, False]
    h.release.set()
    assert wait_for(lambda: all(h.seen(n, "ran") for n in "abc"))
    h.q.put("stop:")
    h.thread.join(10)
    assert not h.thread.is_alive()


def test_pass_turn_off_the_reading_thread_is_refused():
    h = Harness()
    assert h.turns.pass_turn() is False


def test_a_stop_ends_serving_after_the_line_that_set_it():
    h = Harness()
    h.thread.start()
    h.q.put("stop:")
    h.q.put("cheap:never")
    h.thread.join(10)
    assert not h.thread.is_alive() and not h.seen("never")
