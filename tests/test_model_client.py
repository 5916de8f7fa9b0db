"""BentoML's client session refresh with calls in flight (services/model_client.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

from _bentoml_impl.client.proxy2 import SessionManager
from aiohttp import web

import services.model_client  # noqa: F401  (installs keep_calls_across_session_refresh)

ANSWER = b"x" * 40_000


async def slow_answer(request: web.Request) -> web.StreamResponse:
    """An answer whose body arrives in two parts, so that a session closed in between finds its
    calls reading it (as a model service's large JSON answer is read while the client refreshes)."""
    await request.read()
    response = web.StreamResponse()
    response.content_length = len(ANSWER)
    await response.prepare(request)
    await response.write(ANSWER[:20_000])
    await asyncio.sleep(0.2)
    await response.write(ANSWER[20_000:])
    return response


async def calls_through_refreshes(calls: int) -> tuple[Counter, list]:
    app = web.Application()
    app.router.add_post("/generate", slow_answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    # A new session every 3 calls: each refresh happens with calls still reading their answers.
    manager = SessionManager(f"http://127.0.0.1:{port}", timeout=2.0, headers={}, max_requests=3)
    sessions = []

    async def call(index: int) -> str:
        await asyncio.sleep(index * 0.01)
        session = await manager.get_session()
        if session not in sessions:
            sessions.append(session)
        try:
            async with asyncio.timeout(1.5):  # ten times the answer's time: past it the call is stuck
                response = await session.post("/generate", data=b"work")
                body = await response.read()
        except TimeoutError:
            return "stuck"
        except Exception as exc:
            return type(exc).__name__
        return "answered" if body == ANSWER else "wrong answer"

    try:
        outcomes = Counter(await asyncio.gather(*(call(i) for i in range(calls))))
        await asyncio.sleep(2.5)  # the replaced sessions close after the client's timeout (2 s)
        return outcomes, sessions
    finally:
        await manager.close()
        await runner.cleanup()


def test_closing_the_client_closes_the_sessions_it_replaced():
    """At shutdown the replaced sessions close with the client, not at their timers."""

    async def scenario() -> tuple[list, bool]:
        manager = SessionManager("http://127.0.0.1:9", timeout=300.0, headers={}, max_requests=1)
        sessions = []
        for _ in range(4):
            session = await manager.get_session()
            if session not in sessions:
                sessions.append(session)
        open_before = not any(session.closed for session in sessions)
        await manager.close()
        return sessions, open_before

    sessions, open_before = asyncio.run(scenario())
    assert len(sessions) >= 2 and open_before  # replaced, and kept open for calls still on them
    assert all(session.closed for session in sessions)


def test_calls_in_flight_survive_the_client_replacing_its_session():
    outcomes, sessions = asyncio.run(calls_through_refreshes(60))
    assert outcomes == Counter({"answered": 60})
    assert len(sessions) >= 10  # the client did replace its session, many times
    assert all(session.closed for session in sessions[:-1])  # and closed every replaced one, later
