"""Retry-After of a request shed at capacity (services/admission.py `Shedding`), on a simulated clock:
clients turned away come back after the Retry-After they were given, while the admitted ones free
their slots at the service's rate."""

from __future__ import annotations

import heapq
from collections import deque

import pytest

from services import admission


def simulate(
    monkeypatch, clients: int, capacity: int = 8, service_s: float = 1.05, seconds: float = 60.0, queue: int = 0, share: float = 0.5
) -> tuple[float, list[int]]:
    """Closed-loop clients against `capacity` slots that each take `service_s`, with `queue` more
    waiting for a slot (first come, first served): images per second admitted over the last half,
    and the Retry-After values given then."""
    now = [0.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: now[0])
    shedding = admission.Shedding(share=share)
    events = [(i * 0.001, "arrive", i) for i in range(clients)]  # (time, kind, client)
    busy, waiting = 0, deque()
    admitted_late, given_late = 0, []

    def admit(at: float, client: int) -> None:
        nonlocal admitted_late
        shedding.admit()
        admitted_late += at > seconds / 2
        heapq.heappush(events, (at + service_s, "done", client))

    while events:
        at, kind, client = heapq.heappop(events)
        if at > seconds:
            break
        now[0] = at
        if kind == "done":
            heapq.heappush(events, (at, "arrive", client))  # answered: the client sends its next request
            if waiting:
                admit(at, waiting.popleft())  # the slot changes hands
            else:
                busy -= 1
        elif busy < capacity:
            busy += 1
            admit(at, client)
        elif len(waiting) < queue:
            waiting.append(client)
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


def test_with_a_queue_the_shed_wait_their_whole_turn_and_the_slots_stay_busy(monkeypatch):
    """With as many queued as in flight, 32 clients: the 16 turned away are told the whole wait
    (16 / 7.6 per s, about 3 s) rather than half of it, since the queue keeps the slots busy meanwhile;
    about half as many sheds as without the queue, and no slot stands idle."""
    rate, given = simulate(monkeypatch, clients=32, queue=8, share=1.0)
    assert rate == pytest.approx(8 / 1.05, rel=0.03)
    assert min(given) >= 2 and max(given) <= 4
    _, unqueued = simulate(monkeypatch, clients=32)
    assert len(given) <= 0.6 * len(unqueued), (len(given), len(unqueued))
