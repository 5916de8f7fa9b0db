"""Free TCP ports for servers this project starts on loopback (tests, demos, a local Triton).

Asking the kernel for port 0 hands out a port from the ephemeral range, the same range it draws the
source ports of outgoing connections and every other process's port-0 binds from. A port found that way
and bound a few seconds later (after a Bento is built, a model loaded) can be taken in between: a
BentoML server's internal sockets, a client's connection to Prometheus, Triton's own ports. So the ports
here come from below the ephemeral range, at random, each checked to be bindable and none handed out
twice by one process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOWEST = 20000
_handed_out: set[int] = set()
_lock = threading.Lock()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for port-0 binds and outgoing connections (Linux; IANA's range elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that nothing holds now, outside the ephemeral range where there is room."""
    low, high = ephemeral_range()
    candidates = range(_LOWEST, low) if low - _LOWEST >= 1000 else range(max(1024, high + 1), 65536)
    with _lock:
        for _ in range(200 if candidates else 0):
            port = random.choice(candidates)
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    # Everything tried was held: fall back to the kernel's choice.
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
