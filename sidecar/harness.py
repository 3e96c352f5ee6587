"""A terminal harness for people: `python -m sidecar.harness`.

Starts a sidecar and reads commands at a prompt, so a person can drive it without writing
JSON-RPC by hand (they still can: a line starting with `{` or `[` is sent as it is):

    sql SELECT 42                 query.run
    analyze data/orders.parquet   dataset.analyze
    resources | config | cleanup  system.resources, config.get, cleanup
    call METHOD {"json": "params"}
    help | quit

Answers are pretty-printed JSON. Without a terminal (stdin piped), commands are read line by line all the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

from sidecar.client import RpcError, SidecarProcess

SHORTCUTS = {
    "resources": "system.resources",
    "config": "config.get",
    "cleanup": "cleanup",
    "reload": "config.reload",
}


def parse(line: str) -> tuple[str, Any] | None:
    """A harness command as (method, params); None for an empty line.

    >>> parse("sql SELECT 42")
    ('query.run', {'sql': 'SELECT 42'})
    >>> parse('call config.validate {"path": "pack"}')
    ('config.validate', {'path': 'pack'})
    """
    line = line.strip()
    if not line:
        return None
    word, _, rest = line.partition(" ")
    if word == "sql":
        return "query.run", {"sql": rest}
    if word == "analyze":
        args = shlex.split(rest)
        if not args:
            raise ValueError("usage: analyze PATH [exact]")
        return "dataset.analyze", {"path": args[0], "exact": "exact" in args[1:]}
    if word in SHORTCUTS:
        return SHORTCUTS[word], None
    if word == "call":
        method, _, params = rest.partition(" ")
        return method, json.loads(params) if params.strip() else None
    raise ValueError(f"unknown command {word!r}; type `help`")


def raw_exchange(sc: SidecarProcess, line: str) -> Any:
    """Send a line as it is and return the sidecar's answer to it."""
    before = sum("unmatched" in n for n in sc.notifications)
    sc.send_raw(line.encode())
    sc.wait_for(lambda n: sum("unmatched" in m for m in sc.notifications) > before, timeout=3600)
    return [n for n in sc.notifications if "unmatched" in n][before]["unmatched"]


def show(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    interactive = sys.stdin.isatty()
    env = dict(os.environ, BMAD_DATA_LOG_LEVEL=args.log_level)
    with SidecarProcess(env=env) as sc:
        info = sc.request("initialize", {"client": {"name": "harness"}})
        print(
            f"bmad-data sidecar {info['server']['version']} (DuckDB {info['duckdb_version']}); `help` for commands",
            file=sys.stderr,
        )
        while True:
            try:
                line = input("bmad-data> " if interactive else "")
            except EOFError:
                break
            if line.strip() in ("quit", "exit"):
                break
            if line.strip() == "help":
                print(__doc__, file=sys.stderr)
                continue
            try:
                if line.lstrip().startswith(("{", "[")):
                    show(raw_exchange(sc, line))
                    continue
                command = parse(line)
                if command is not None:
                    show(sc.request(command[0], command[1], timeout=3600))
            except RpcError as err:
                show(
                    {
                        "error": err.code,
                        "message": str(err),
                        "hint": err.hint,
                        "details": err.data.get("details"),
                    }
                )
            except (ValueError, json.JSONDecodeError) as err:
                print(f"error: {err}", file=sys.stderr)
        sc.request("shutdown")
        sc.notify("exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
