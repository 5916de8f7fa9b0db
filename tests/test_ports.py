"""Ports for loopback servers come from outside the kernel's ephemeral range and are never handed out twice."""

from __future__ import annotations

import socket

from fashion_studio import ports


def test_free_ports_are_bindable_distinct_and_below_the_ephemeral_range():
    low, high = ports.ephemeral_range()
    assert 1024 <= low <= high <= 65535
    handed = [ports.free_port() for _ in range(50)]
    assert len(set(handed)) == len(handed)
    if low - ports._LOWEST >= 1000:
        assert all(ports._LOWEST <= port < low for port in handed), handed
    for port in handed[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_held_port_is_not_handed_out(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        # Only the held port is in range: free_port must not return it (it falls back to the kernel's choice).
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (taken + 1, 60999))
        monkeypatch.setattr(ports, "_LOWEST", taken - 1000 + 1)
        monkeypatch.setattr(ports.random, "choice", lambda candidates: taken)
        port = ports.free_port()
        assert port != taken
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
