"""Conversations (seed 001): the session store on both backends (SQLite, and a real redis-server started
here), appends at once from threads and processes, the message parser in English and German, and the
served conversation over real HTTP: generate -> edit -> recommend, a gateway restart on the same
storage, two messages posted at once, and the error statuses."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import subprocess
import threading
from pathlib import Path

import pytest

from fashion_studio.errors import ConflictError, InvalidInputError, NotFoundError
from fashion_studio.sessions.store import RedisSessionStore, open_store
from fashion_studio.sessions.understand import message_language, understand
from fashion_studio.translation import Translation
from tests.helpers import REDIS_SERVER, RedisServer, wait_until

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (Debian package redis-server; `make tools` installs it)")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; `make tools` installs it)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    return request.getfixturevalue("redis_server").url


# --- the store -----------------------------------------------------------------------------------------


def test_a_session_keeps_its_turns_in_order_and_a_second_connection_reads_them(store_url):
    store = open_store(store_url, max_turns=3)
    session = store.create()
    assert store.get(session.id).turns == []
    first = store.append(session.id, {"action": "generate", "text": "a red dress", "images": [{"id": "gen-1"}]})
    second = store.append(session.id, {"action": "edit", "text": "make it blue — blau", "images": [{"id": "edit-2"}]})
    assert (first.seq, second.seq) == (1, 2)
    again = open_store(store_url, max_turns=3)  # another gateway process, or the same one restarted
    turns = again.get(session.id).turns
    assert [t.seq for t in turns] == [1, 2]
    assert [t.data["text"] for t in turns] == ["a red dress", "make it blue — blau"]
    assert turns[0].created_at <= turns[1].created_at
    store.append(session.id, {"action": "recommend"})
    with pytest.raises(ConflictError) as full:
        again.append(session.id, {"action": "recommend"})
    assert full.value.field == "session_id" and "at most 3 turns" in full.value.limit
    assert len(store.get(session.id).turns) == 3


def test_a_turn_is_stored_only_onto_the_session_it_acted_on(store_url):
    """Two replicas answer two messages of one session at once: both read one turn, the first to store
    its turn wins, the other's edit (which started from turn 1's image) is a 409 to send again, and the
    session holds each turn once, the winner's second."""
    replica_a, replica_b = open_store(store_url, max_turns=3), open_store(store_url, max_turns=3)
    session = replica_a.create()
    replica_a.append(session.id, {"images": [{"id": "gen-1"}]}, after=0)
    read_a, read_b = len(replica_a.get(session.id).turns), len(replica_b.get(session.id).turns)
    assert replica_b.append(session.id, {"images": [{"id": "edit-b"}]}, after=read_b).seq == 2
    with pytest.raises(ConflictError) as late:
        replica_a.append(session.id, {"images": [{"id": "edit-a"}]}, after=read_a)
    assert late.value.field == "session_id" and "send it again" in late.value.limit
    assert [t.data["images"][0]["id"] for t in replica_a.get(session.id).turns] == ["gen-1", "edit-b"]
    assert replica_a.append(session.id, {"images": [{"id": "edit-a"}]}, after=2).seq == 3
    with pytest.raises(ConflictError) as full:
        replica_b.append(session.id, {}, after=3)
    assert "at most 3 turns" in full.value.limit


def test_an_unknown_or_malformed_session_id_is_not_found(store_url):
    store = open_store(store_url)
    for bad in ("0" * 32, "../../etc/passwd", ""):
        with pytest.raises(NotFoundError) as missing:
            store.get(bad)
        assert missing.value.field == "session_id"
        with pytest.raises(NotFoundError):
            store.append(bad, {"action": "generate"})


def test_an_idle_session_expires(store_url):
    store = open_store(store_url, ttl_s=0.001)
    session = store.create()
    wait_until(lambda: _gone(store, session.id), 10, "the session to expire")


def _gone(store, session_id: str) -> bool:
    try:
        store.get(session_id)
    except NotFoundError:
        return True
    return False


def test_appends_at_once_from_many_connections_are_all_kept_in_order(store_url):
    """8 threads, each with its own connection, append 25 turns each to one session, all 8 at once in
    every round: every turn is kept, the sequence numbers are 1..200 with no gap or repeat, and each
    thread's turns keep the order it appended them in."""
    session = open_store(store_url).create()
    barrier = threading.Barrier(8)

    def worker(n: int) -> list[int]:
        store = open_store(store_url)
        seqs = []
        for i in range(25):
            barrier.wait()
            seqs.append(store.append(session.id, {"worker": n, "i": i}).seq)
        return seqs

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answered = list(pool.map(worker, range(8)))
    _check_interleaving(open_store(store_url).get(session.id).turns, workers=8, each=25, answered=answered)


def _append_from_process(url: str, session_id: str, n: int, count: int, rounds) -> list[int]:
    store = open_store(url)
    seqs = []
    for i in range(count):
        rounds.wait()  # every process appends at once, round after round
        seqs.append(store.append(session_id, {"worker": n, "i": i}).seq)
    return seqs


def test_gateway_processes_sharing_one_sqlite_file_take_turns_one_at_a_time(tmp_path):
    """What several gateway processes on one host do: four processes append at once to one file."""
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    session = open_store(url).create()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        rounds = manager.Barrier(4)
        with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
            futures = [pool.submit(_append_from_process, url, session.id, n, 30, rounds) for n in range(4)]
            answered = [f.result(timeout=120) for f in futures]
    _check_interleaving(open_store(url).get(session.id).turns, workers=4, each=30, answered=answered)


def _check_interleaving(turns, workers: int, each: int, answered: list[list[int]]) -> None:
    assert [t.seq for t in turns] == list(range(1, workers * each + 1))
    for n in range(workers):
        mine = [t for t in turns if t.data["worker"] == n]
        assert [t.data["i"] for t in mine] == list(range(each)), f"worker {n}'s turns out of order"
        assert [t.seq for t in mine] == answered[n], "the seq an append returned is where the turn is"
    switches = sum(a.data["worker"] != b.data["worker"] for a, b in zip(turns, turns[1:]))
    assert switches > workers - 1, "the appends did not overlap: each worker's turns came in one block"


@needs_redis
def test_redis_sessions_survive_a_restart_of_the_redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        store = RedisSessionStore(server.url)
        session = store.create()
        store.append(session.id, {"action": "generate", "images": [{"id": "gen-a"}]})
        store.append(session.id, {"action": "edit", "images": [{"id": "edit-b"}]})
        port = server.port
        server.stop()
        from fashion_studio.errors import UnavailableError

        with pytest.raises(UnavailableError) as down:
            store.get(session.id)
        assert down.value.what == "sessions"
        server = RedisServer(tmp_path / "redis", port=port)
        assert [t.data["images"][0]["id"] for t in store.get(session.id).turns] == ["gen-a", "edit-b"]
        assert store.append(session.id, {"action": "recommend"}).seq == 3
    finally:
        server.stop()


def test_a_store_url_of_an_unknown_kind_is_refused():
    with pytest.raises(InvalidInputError) as bad:
        open_store("mongodb://somewhere/sessions")
    assert bad.value.field == "sessions_url" and "redis://" in bad.value.limit
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisSessionStore)  # connects on first use


# --- understanding a message ---------------------------------------------------------------------------

UNRELIABLE = Translation("Boys's t-shirt for blue.", confidence=0.2, reliable=False)

# (message, has an image already, the action, the English it acts on)
ENGLISH = [
    ("a red summer dress", False, "generate", "a red summer dress"),
    ("Draw me a linen shirt, please", True, "generate", "a linen shirt"),
    ("show me a yellow skirt", True, "generate", "a yellow skirt"),
    ("I'd like a striped cap", True, "generate", "a striped cap"),
    ("new: a green jacket", True, "generate", "a green jacket"),
    ("Please make it blue!", True, "edit", "make it blue"),
    ("make the sleeves longer", True, "edit", "make the sleeves longer"),
    ("add a belt", True, "edit", "add a belt"),
    ("without sleeves", True, "edit", "without sleeves"),
    ("change the colour to green", True, "edit", "change the colour to green"),
    ("remove the stripes", True, "edit", "remove the stripes"),
    ("Can you give it dots?", True, "edit", "give it dots"),
    ("navy instead", True, "edit", "navy instead"),
    ("I want it in navy", True, "edit", "I want it in navy"),
    ("can I have it with dots?", True, "edit", "can I have it with dots"),
    ("I want a striped cap", True, "generate", "a striped cap"),
    ("show me similar products", True, "recommend", None),
    ("Recommend something", True, "recommend", None),
    ("where can I buy it?", True, "recommend", None),
    ("ok, show me products", True, "recommend", None),
]

# German with an unreliable translation (as fashion-mini's translator gives for chat): read through the lexicon.
GERMAN = [
    ("ein rotes Sommerkleid mit Gürtel", False, "generate", "a dress, featuring red, belt"),
    ("Zeichne mir eine blaue Jacke", True, "generate", "a jacket, featuring blue"),
    ("ich möchte einen gelben Rock", False, "generate", "a skirt, featuring yellow"),
    ("Mach es blau", True, "edit", "make it blue"),
    ("Bitte mach es gestreift, danke", True, "edit", "make it striped"),
    ("Füge einen Gürtel hinzu", True, "edit", "add a belt"),
    ("mit Streifen", True, "edit", "add stripes"),
    ("ohne Ärmel", True, "edit", "without sleeves"),
    ("Entferne die Streifen", True, "edit", "remove stripes"),
    ("ändere die Farbe zu Grün", True, "edit", "make it green"),
    ("in Blau", True, "edit", "make it blue"),
    ("Zeig mir ähnliche Produkte", True, "recommend", None),
    ("Empfiehl mir etwas", True, "recommend", None),
    ("Wo kann ich das kaufen?", True, "recommend", None),
]


@pytest.mark.parametrize(("message", "has_image", "action", "text"), ENGLISH)
def test_english_phrasings(message, has_image, action, text):
    assert message_language(message) == "en"
    understood = understand(message, language="en", has_image=has_image)
    assert (understood.action, understood.text, understood.understood) == (action, text, "words")
    assert understood.source == (None if action == "recommend" else "message")


@pytest.mark.parametrize(("message", "has_image", "action", "text"), GERMAN)
def test_german_phrasings_with_an_unreliable_translation_are_read_through_the_lexicon(message, has_image, action, text):
    assert message_language(message) == "de"
    understood = understand(message, language="de", has_image=has_image, translation=UNRELIABLE)
    assert (understood.action, understood.text) == (action, text)
    assert understood.source == (None if action == "recommend" else "lexicon")


def test_a_reliable_translation_is_what_the_action_acts_on():
    sure = Translation("Make it navy.", confidence=0.97, reliable=True)
    understood = understand("Mach es marineblau.", language="de", has_image=True, translation=sure)
    assert (understood.action, understood.text, understood.source) == ("edit", "Make it navy", "translation")
    # German words no phrasing knows, translated reliably into English ones that a phrasing knows.
    described = understand("Zauberhaft: ein Kleid", language="de", has_image=True, translation=Translation("Draw a red dress", 0.95, True))
    assert (described.action, described.text, described.source) == ("generate", "a red dress", "translation")


def test_a_named_action_wins_over_the_words():
    named = understand("blue", language="en", has_image=True, action="edit")
    assert (named.action, named.understood, named.text) == ("edit", "named", "blue")
    assert understand("a red dress", language="en", has_image=True, action="recommend").action == "recommend"
    german = understand("blau", language="de", has_image=True, action="edit", translation=UNRELIABLE)
    assert (german.action, german.text) == ("edit", "make it blue")


@pytest.mark.parametrize(
    ("message", "language", "has_image", "why"),
    [
        ("hello!", "en", False, "says nothing"),
        ("something nice for a wedding", "en", False, "names no garment"),
        ("a green coat", "en", True, "with an image on the table"),
        ("mach es schön", "de", True, "names no colour"),
        ("Hallo, wie geht's?", "de", False, "names no garment"),
    ],
)
def test_what_is_not_understood_is_a_422_on_message_that_says_what_is(message, language, has_image, why):
    with pytest.raises(InvalidInputError) as refused:
        understand(message, language=language, has_image=has_image, translation=UNRELIABLE if language == "de" else None)
    error = refused.value
    assert error.field == "message" and why in error.limit
    for example in ("make it blue", "show me similar products", "mach es blau", "action: generate | edit | recommend"):
        assert example in error.limit


def test_language_is_decided_by_the_phrasings_before_the_guess():
    assert message_language("show me similar products") == "en"  # the attribute parser alone says German on a tie
    assert message_language("ohne Ärmel") == "de"
    assert message_language("a red dress", "de") == "de"  # a named language is taken as named


def test_the_demo_sheet_draws_each_turn_with_its_products(tmp_path):
    from PIL import Image

    from fashion_studio.sessions.demo import CELL, Step, render_sheet

    red, blue = Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (64, 64), (30, 30, 200))
    products = [({"product_id": f"P-{i}", "name": f"Product {i}", "score": 0.9 - i / 10}, Image.new("RGB", (64, 64), (20 * i, 120, 80))) for i in range(5)]
    generate = {"action": "generate", "language": "en", "text": "a red dress", "images": [{"clip_score": 30.1}]}
    edit = {"action": "edit", "language": "de", "text": "make it blue", "images": [{"clip_score": 27.5}]}
    conversations = [[Step("a red dress", generate, red, products), Step("Mach es blau", edit, blue, products[:4] + [(products[4][0], None)])]]
    sheet = Image.open(render_sheet(conversations, tmp_path / "sheet.png")).convert("RGB")
    assert sheet.width > 6 * CELL and sheet.height > 2 * CELL
    colours = {sheet.getpixel((x, y)) for x in range(0, sheet.width, 4) for y in range(0, sheet.height, 4)}
    assert any(r > 150 and b < 80 for r, _, b in colours) and any(b > 150 and r < 80 for r, _, b in colours)


# --- the Kubernetes overlays ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_each_overlay_points_the_gateways_at_one_redis_that_only_they_reach(overlay):
    import sys

    import yaml

    rendered = subprocess.run(
        [str(Path(sys.executable).with_name("kubectl")), "kustomize", f"k8s/overlays/{overlay}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    (settings,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("fashion-studio-settings")]
    url = settings["data"]["FASHION_SESSIONS_URL"]
    assert url == "redis://sessions-redis:6379/0"
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "sessions-redis")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 6379
    redis = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "sessions-redis")
    pod = redis["spec"]["template"]["spec"]
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--appendfsync") + 1] == "always" and args[args.index("--dir") + 1] == "/data"
    assert any(m["mountPath"] == "/data" and m["name"] == "data" for m in container["volumeMounts"])
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "sessions-redis")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "studio"}}}]
    assert rule["ports"] == [{"port": "redis", "protocol": "TCP"}]


# --- the conversation over HTTP ------------------------------------------------------------------------


SHOP = 120  # demo articles indexed for the served tests


class Gateway:
    """The deployment on the shipped fashion-mini models, with its own storage (images and the
    sessions' SQLite file under it) and a demo shop indexed by the scorer's CLIP; restartable on the
    same storage."""

    def __init__(self, root: Path) -> None:
        from fashion_studio.index import ProductIndex
        from fashion_studio.index.demo import render_demo_catalog
        from fashion_studio.scoring import Scorer
        from fashion_studio.settings import Settings

        self.root = root
        shop = render_demo_catalog(SHOP, root / "shop", seed=5, workers=1)
        settings = Settings(torch_threads=1)
        ProductIndex.open(settings, str(root / "index"), embedder=Scorer.load(settings), create=True).build(shop)
        self.env = {
            "FASHION_STORAGE_URL": str(root / "store"),
            "FASHION_PRODUCTS_DIR": str(shop.root),
            "FASHION_INDEX_URL": str(root / "index"),
            "FASHION_WARMUP": "false",
            "FASHION_DEFAULT_STEPS": "4",
            "FASHION_EDIT_STEPS": "4",
            "FASHION_LIMITS__MAX_MESSAGE_CHARS": "300",
        }
        self.starts = 0
        self.server = None

    def start(self) -> None:
        from tests.helpers import Server

        self.starts += 1
        self.server = Server("services.gateway:Studio", self.env, self.root / f"server-{self.starts}.log")
        self.server.wait_ready(timeout=300)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def post(self, path: str, body: dict | None = None, timeout: float = 180):
        import httpx

        return httpx.post(f"{self.server.url}{path}", json=body, timeout=timeout)

    def get(self, path: str, timeout: float = 60):
        import httpx

        return httpx.get(f"{self.server.url}{path}", timeout=timeout)

    def say(self, session_id: str, message: str, **fields):
        reply = self.post(f"/sessions/{session_id}/messages", {"message": message, **fields})
        assert reply.status_code == 200, reply.text
        return reply.json()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    served = Gateway(tmp_path_factory.mktemp("conversation"))
    served.start()
    try:
        yield served
    finally:
        served.stop()


def test_the_error_statuses_name_what_is_wrong(gateway):
    unknown = "0123456789abcdef0123456789abcdef"
    for reply in (
        gateway.post(f"/sessions/{unknown}/messages", {"message": "a red dress"}),
        gateway.get(f"/sessions/{unknown}"),
        gateway.get("/sessions/not-an-id"),
    ):
        assert reply.status_code == 404, reply.text
        assert reply.json()["field"] == "session_id"
    session = gateway.post("/sessions").json()["id"]
    too_long = gateway.post(f"/sessions/{session}/messages", {"message": "a red dress " * 30})
    assert too_long.status_code == 422 and too_long.json()["field"] == "message" and "300" in too_long.json()["limit"]
    puzzling = gateway.post(f"/sessions/{session}/messages", {"message": "hello there"})
    assert puzzling.status_code == 422 and puzzling.json()["field"] == "message" and "make it blue" in puzzling.json()["limit"]
    for message, action in (("make it blue", "edit"), ("show me similar products", "recommend"), ("a red dress", "edit")):
        early = gateway.post(f"/sessions/{session}/messages", {"message": message, **({"action": action} if message == "a red dress" else {})})
        assert early.status_code == 409, early.text
        assert early.json()["field"] == "action" and "describe an outfit first" in early.json()["limit"]
    bad_action = gateway.post(f"/sessions/{session}/messages", {"message": "a red dress", "action": "delete"})
    assert bad_action.status_code == 422 and bad_action.json()["field"] == "action"
    assert gateway.get(f"/sessions/{session}").json()["turns"] == []  # refused messages leave no turn


def _image_of(turn: dict) -> str:
    (image,) = turn["images"]
    return image["id"]


def _check_recommendations(turn: dict) -> None:
    assert turn["recommendation_error"] is None, turn["recommendation_error"]
    assert len(turn["recommendations"]) == 5


def test_a_conversation_generate_edit_recommend_survives_a_gateway_restart(gateway):
    session = gateway.post("/sessions").json()["id"]
    first = gateway.say(session, "a red summer dress", seed=11)
    assert (first["seq"], first["action"], first["language"], first["understood"]) == (1, "generate", "en", "words")
    assert "a red summer dress" in first["prompt"] and first["images"][0]["clip_score"] is not None
    drawn = _image_of(first)
    _check_recommendations(first)
    png = gateway.get(f"/images/{drawn}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"

    edited = gateway.say(session, "Please make it blue!", seed=12)
    assert (edited["seq"], edited["action"], edited["text"], edited["based_on"]) == (2, "edit", "make it blue", drawn)
    blue = _image_of(edited)
    assert blue != drawn and edited["images"][0]["source_image_id"] == drawn
    _check_recommendations(edited)

    asked = gateway.say(session, "show me similar products")
    assert (asked["seq"], asked["action"], asked["based_on"], asked["images"]) == (3, "recommend", blue, [])
    _check_recommendations(asked)
    assert asked["recommendations"] == edited["recommendations"]  # the same image, the same products

    before = gateway.get(f"/sessions/{session}").json()
    assert [t["action"] for t in before["turns"]] == ["generate", "edit", "recommend"] and before["current_image_id"] == blue

    gateway.stop()
    gateway.start()  # the same storage: images and the sessions' file

    after = gateway.get(f"/sessions/{session}").json()
    assert after == before
    striped = gateway.say(session, "Mach es gestreift", seed=13)  # German, from the image the session had
    assert (striped["seq"], striped["language"], striped["action"], striped["based_on"]) == (4, "de", "edit", blue)
    assert striped["translation"] is not None and striped["text"] in ("make it striped", striped["translation"]["text"].strip(" .!"))
    assert gateway.get(f"/images/{_image_of(striped)}").status_code == 200


def test_two_messages_posted_at_once_to_one_session_are_both_kept_in_order(gateway):
    session = gateway.post("/sessions").json()["id"]
    first = gateway.say(session, "a yellow skirt", seed=21)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(
            pool.map(
                lambda message: gateway.post(f"/sessions/{session}/messages", {"message": message, "seed": 22}), ["make it navy", "show me similar products"]
            )
        )
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    answered = sorted((r.json() for r in replies), key=lambda t: t["seq"])
    assert [t["seq"] for t in answered] == [2, 3]
    history = gateway.get(f"/sessions/{session}").json()["turns"]
    assert [t["seq"] for t in history] == [1, 2, 3] and history[1:] == answered and history[0] == first
    # Each turn started from the image the turns stored before it left.
    current = _image_of(first)
    for turn in history[1:]:
        assert turn["based_on"] == current
        current = _image_of(turn) if turn["images"] else current


def test_turns_are_counted_by_action(gateway):
    text = gateway.get("/metrics").text
    counted = {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("fashion_session_turns_total{")
    }
    assert any('action="edit"' in labels and 'language="en"' in labels for labels in counted), counted
    assert any('action="recommend"' in labels for labels in counted) and any('action="generate"' in labels for labels in counted)
    assert 'fashion_requests_total{code="200",endpoint="/sessions/{session_id}/messages"}' in text
