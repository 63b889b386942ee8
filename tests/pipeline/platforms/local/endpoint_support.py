"""Helpers the local endpoint's tests share (the pipeline layer's and the CLI's)."""

from __future__ import annotations

import socket


def port_is_free(port: int) -> bool:
    """Whether a server could listen there now (SO_REUSEADDR, as servers do: closed connections linger in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True
