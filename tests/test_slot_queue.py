"""The gateway's request slots and the short queue in front of them (services/lifecycle.py `Traffic`):
first come first served, a freed slot goes straight to the head of the queue, and a request that
leaves the queue (its wait over, cancelled, or turned away by a drain) never holds or loses a slot."""

from __future__ import annotations

import asyncio

import pytest

from services.lifecycle import Traffic


def run(coroutine):
    return asyncio.run(coroutine)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_slots_are_taken_at_once_until_full_then_requests_queue_in_order():
    async def scenario() -> None:
        traffic = Traffic()
        assert await traffic.take_slot(2, 2, 10.0) and await traffic.take_slot(2, 2, 10.0)
        assert traffic.in_flight == 2
        order: list[str] = []

        async def waiter(name: str) -> None:
            assert await traffic.take_slot(2, 2, 10.0)
            order.append(name)

        first = asyncio.create_task(waiter("first"))
        await settle()
        second = asyncio.create_task(waiter("second"))
        await settle()
        assert len(traffic.waiting) == 2 and not order
        # The queue is full: the next request is turned away at once.
        assert not await traffic.take_slot(2, 2, 10.0)

        traffic.free_slot()
        await settle()
        assert order == ["first"] and traffic.in_flight == 2  # the slot changed hands
        traffic.free_slot()
        await asyncio.gather(first, second)
        assert order == ["first", "second"] and traffic.in_flight == 2 and not traffic.waiting

        traffic.free_slot()
        traffic.free_slot()
        assert traffic.in_flight == 0

    run(scenario())


def test_a_free_slot_is_not_taken_past_someone_waiting():
    """A slot freed while others wait goes to them, not to a request that arrives just then."""

    async def scenario() -> None:
        traffic = Traffic()
        assert await traffic.take_slot(1, 1, 10.0)
        waiting = asyncio.create_task(traffic.take_slot(1, 1, 10.0))
        await settle()
        traffic.free_slot()
        assert not await traffic.take_slot(1, 0, 10.0)  # no queue room, and the slot is promised
        assert await waiting and traffic.in_flight == 1

    run(scenario())


def test_a_wait_that_runs_out_leaves_the_queue_without_a_slot():
    async def scenario() -> None:
        traffic = Traffic()
        assert await traffic.take_slot(1, 4, 0.05)
        assert not await traffic.take_slot(1, 4, 0.05)
        assert not traffic.waiting and traffic.in_flight == 1
        traffic.free_slot()  # nobody waits: the slot returns to the pool
        assert traffic.in_flight == 0
        # No queue at all (length 0 or no wait): shed at once.
        assert await traffic.take_slot(1, 0, 1.0)
        assert not await traffic.take_slot(1, 0, 1.0) and not await traffic.take_slot(1, 4, 0.0)

    run(scenario())


def test_a_cancelled_waiter_passes_on_the_slot_it_was_handed():
    async def scenario() -> None:
        traffic = Traffic()
        assert await traffic.take_slot(1, 4, 10.0)
        gone = asyncio.create_task(traffic.take_slot(1, 4, 10.0))
        after = asyncio.create_task(traffic.take_slot(1, 4, 10.0))
        await settle()
        traffic.free_slot()  # handed to `gone`, which is cancelled before it runs again
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert await after and traffic.in_flight == 1 and not traffic.waiting

        cancelled_early = asyncio.create_task(traffic.take_slot(1, 4, 10.0))
        await settle()
        cancelled_early.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled_early
        assert not traffic.waiting
        traffic.free_slot()
        assert traffic.in_flight == 0

    run(scenario())


def test_a_drain_turns_away_whoever_waits():
    async def scenario() -> None:
        traffic = Traffic()
        assert await traffic.take_slot(1, 4, 10.0)
        waiters = [asyncio.create_task(traffic.take_slot(1, 4, 10.0)) for _ in range(3)]
        await settle()
        traffic.draining = True
        traffic.turn_away_waiting()
        assert await asyncio.gather(*waiters) == [False, False, False]
        assert not await traffic.take_slot(1, 4, 10.0)  # nothing queues once draining
        traffic.free_slot()
        assert traffic.in_flight == 0

    run(scenario())
