"""The shared daemon: the sidecar's protocol on a Unix socket, one engine for every client.

`python -m sidecar daemon` (`sidecar/daemon/main.py`) runs it; `service.py` is the daemon (lock,
socket, accept loop, idle stop), `connection.py` one client, `writer.py` a client's own writer,
`engine_view.py` a client's default database, `paths.py` where the socket lives.
docs/daemon.md is the user's guide.
"""
