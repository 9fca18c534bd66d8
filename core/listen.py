"""Tell a busy port apart before start-up, so the user reads one line instead of a server's bind traceback."""

from __future__ import annotations

import errno
import socket


def port_problem(host: str, port: int, setting: str) -> str | None:
    """None if `host:port` can be bound now, else one line naming the port and the setting that moves it.

    Binds with SO_REUSEADDR, as uvicorn and http.server do, so a port in TIME_WAIT after a stopped run counts as free.
    Port 0 (any free port) is always free.
    """
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"error: port {port} on {host} is in use (another yuqing?); "
                        f"set {setting} in yuqing.yaml or stop the other process")
            return f"error: cannot listen on {host}:{port} ({exc.strerror}); check {setting} in yuqing.yaml"
    return None
