"""Retry-After of a request shed at capacity (services/admission.py `Shedding`), on a simulated clock:
clients turned away come back after the Retry-After they were given, while the admitted ones free
their slots at the service's rate."""

from __future__ import annotations

import heapq

import pytest

from services import admission


def simulate(monkeypatch, clients: int, capacity: int = 8, service_s: float = 1.05, seconds: float = 60.0) -> tuple[float, list[int]]:
    """Closed-loop clients against `capacity` slots that each take `service_s`: images per second
    admitted over the last half, and the Retry-After values given then."""
    now = [0.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: now[0])
    shedding = admission.Shedding()
    events = [(i * 0.001, "arrive", i) for i in range(clients)]  # (time, kind, client)
    busy = 0
    admitted_late, given_late = 0, []
    while events:
        at, kind, client = heapq.heappop(events)
        if at > seconds:
            break
        now[0] = at
        if kind == "done":
            busy -= 1
            heapq.heappush(events, (at, "arrive", client))  # answered: the client sends its next request
        elif busy < capacity:
            busy += 1
            shedding.admit()
            admitted_late += at > seconds / 2
            heapq.heappush(events, (at + service_s, "done", client))
        else:
            wait = shedding.retry_after_s()
            if at > seconds / 2:
                given_late.append(wait)
            heapq.heappush(events, (at + wait, "arrive", client))
    return admitted_late / (seconds / 2), given_late


def test_at_capacity_or_a_little_over_clients_are_told_one_second(monkeypatch):
    rate, given = simulate(monkeypatch, clients=12)
    assert set(given) == {1}
    assert rate == pytest.approx(8 / 1.05, rel=0.03)  # every slot kept busy


def test_far_over_capacity_retries_thin_out_and_the_slots_stay_busy(monkeypatch):
    rate, given = simulate(monkeypatch, clients=32)
    assert min(given) >= 2 and max(given) <= 3  # 24 waiting clients: about 24 / (2 x 7.6 per s)
    assert rate == pytest.approx(8 / 1.05, rel=0.03)  # and still no slot stands idle
    constant = 24 * 60.0 / 2  # Retry-After: 1 for 24 waiting clients: 24 sheds a second
    assert len(given) <= 0.55 * constant


def test_the_retry_after_is_bounded(monkeypatch):
    _, given = simulate(monkeypatch, clients=400)
    assert max(given) == 10 and min(given) >= 1
