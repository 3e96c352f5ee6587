"""The shared daemon: the sidecar's protocol on a Unix socket, one engine for every client.

`python -m sidecar daemon` (`main.py`) runs it: `service.py` is the daemon (lock, socket, peer
check, accept loop, idle stop), `connection.py` one client, `writer.py` a client's own writer,
`engine_view.py` a client's default database, `configs.py` packs and watchers shared by sessions,
`ledger.py` the machine budget shared with the user's other daemons, `paths.py` where the socket
lives, `client.py` a small client for tests and benchmarks. docs/daemon.md is the user's guide.
"""
