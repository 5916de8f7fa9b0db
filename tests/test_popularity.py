"""Popularity: the event log, the models, and the served feature over real HTTP on the shipped models.

Events go in through `/feedback` and the simulator, survive a killed gateway, a retrain takes seconds,
and `/popularity` then ranks an article the simulated shoppers prefer above one they avoid."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from fashion_studio.errors import InvalidInputError
from fashion_studio.mini import MINI_DIR
from fashion_studio.popularity.evaluate import ndcg, spearman
from fashion_studio.popularity.events import Event, RedisEventStore, SqliteEventStore, check_event, open_store
from fashion_studio.popularity.models import is_heldout, split_ids
from fashion_studio.popularity.simulate import ShopperConfig, simulate
from fashion_studio.products import demo_products, write_catalog
from tests.helpers import REDIS_SERVER, RedisServer

SHIPPED = MINI_DIR / "popularity"


def test_an_appended_event_is_there_after_the_store_is_reopened(tmp_path):
    store = SqliteEventStore(tmp_path / "events.db")
    first = store.append(Event("like", "product", "P-1", time.time() - 5, "u1"))
    store.append_many([Event("view", "product", "P-1", time.time() - 4), Event("click", "image", "gen-ab", time.time())])
    store.close()
    again = SqliteEventStore(tmp_path / "events.db")
    assert again.count() == 3 and first == 1
    assert again.engagement("product") == {"P-1": {"like": 1, "view": 1}}
    assert again.engagement("image") == {"gen-ab": {"click": 1}}


def test_the_redis_store_is_one_log_for_every_replica_and_survives_a_redis_restart(tmp_path):
    """Two gateway replicas (two store objects) append to one Redis: the log holds both replicas' events in
    order, and counts them exactly as the embedded store counts the same events; a restarted Redis (its
    append-only file synced per write) still has every acknowledged event; while it is down, an append is a
    503-kind error naming the event store, not a lost event."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; `make tools` installs it)")
    from fashion_studio.errors import UnavailableError

    now = time.time()
    events = [
        Event("like", "product", "P-1", now - 9, "u1"),
        Event("view", "product", "P-1", now - 8),
        Event("purchase", "product", "P-2", now - 7, "u2", 3, "import"),
        Event("click", "image", "gen-ab", now - 6),
        Event("view", "product", "P\tweird", now - 5),
    ]
    server = RedisServer(tmp_path / "redis")
    try:
        first, second = open_store(server.url), open_store(server.url)
        assert isinstance(first, RedisEventStore)
        assert first.append(events[0]) == 1 and second.append(events[1]) == 2
        assert first.append_many(events[2:]) == 3 and second.count() == 5
        embedded = SqliteEventStore(tmp_path / "events.db")
        embedded.append_many(events)
        for kind in ("product", "image"):
            assert second.engagement(kind) == embedded.engagement(kind), kind
        assert list(second.events()) == list(embedded.events()) == events
        # a batch stored under a key is stored once, on either store
        for store in (second, embedded):
            assert store.append_many(events[:2], once="purchases-file:abc") == 2
            assert store.append_many(events[:2], once="purchases-file:abc") == 0
            assert store.count() == 7
        assert second.engagement() == embedded.engagement()
        events = [*events, *events[:2]]
        port = server.port
        server.stop()
        with pytest.raises(UnavailableError) as down:
            first.append(events[0])
        assert down.value.what == "events"
        server = RedisServer(tmp_path / "redis", port=port)
        assert list(open_store(server.url).events()) == events and first.count() == len(events) == 7
    finally:
        server.stop()


def test_the_redis_store_reads_a_long_log_in_pages(tmp_path):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; `make tools` installs it)")
    server = RedisServer(tmp_path / "redis")
    try:
        store = RedisEventStore(server.url)
        store.PAGE, store.CHUNK = 7, 4
        events = [Event("view", "product", f"P-{i}", 1_700_000_000.0 + i) for i in range(30)]
        assert store.append_many(events) == 30
        assert list(store.events()) == events
        # a keyed batch goes in chunks, each stored once: a run cut off after two chunks, then run again,
        # stores the rest and nothing twice; a third run stores nothing
        assert store.append_many(events[:8], once="batch") == 8
        assert store.append_many(events, once="batch") == 22
        assert store.append_many(events, once="batch") == 0
        assert list(store.events()) == events + events
    finally:
        server.stop()


def test_an_event_store_url_of_an_unknown_kind_is_refused():
    with pytest.raises(InvalidInputError) as bad:
        open_store("mongodb://somewhere/events")
    assert bad.value.field == "events_url" and "redis://" in bad.value.limit


def test_an_event_from_the_future_or_of_an_unknown_kind_is_refused():
    now = time.time()
    with pytest.raises(InvalidInputError) as future:
        check_event(Event("like", "product", "P-1", now + 3600), now=now)
    assert future.value.field == "timestamp" and "must not be in the future" in future.value.limit
    with pytest.raises(InvalidInputError) as kind:
        check_event(Event("share", "product", "P-1", now), now=now)
    assert kind.value.field == "kind" and "purchase" in kind.value.limit
    for ts in (float("nan"), float("inf"), float("-inf"), 0.0):  # NaN would reach SQLite as NULL
        with pytest.raises(InvalidInputError) as bad_time:
            check_event(Event("like", "product", "P-1", ts), now=now)
        assert bad_time.value.field == "timestamp" and "2000-01-01" in bad_time.value.limit
    with pytest.raises(InvalidInputError) as many:
        check_event(Event("purchase", "product", "P-1", now, quantity=10**20), now=now)
    assert many.value.field == "quantity" and "1000000" in many.value.limit


def test_purchases_import_checks_every_row_before_storing_any(tmp_path):
    write_catalog(demo_products(5, seed=0), tmp_path / "shop")
    events = f"sqlite:///{tmp_path / 'events.db'}"
    command = [sys.executable, "-m", "fashion_studio.cli", "popularity", "import-purchases", "--catalog", str(tmp_path / "shop"), "--events", events]
    bad = tmp_path / "bad.csv"
    bad.write_text("product_id,timestamp,quantity\nP-00001,2025-05-01T10:00:00Z,2\nP-99999,2025-05-01T11:00:00Z,1\n")
    result = subprocess.run([*command, str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "line 3: product_id" in result.stderr and "P-99999" in result.stderr
    good = tmp_path / "good.csv"
    good.write_text("product_id,timestamp,quantity\nP-00001,2025-05-01T10:00:00Z,2\nP-00002,1746093600,1\n")
    result = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"imported": 2}
    assert SqliteEventStore(tmp_path / "events.db").engagement() == {"P-00001": {"purchase": 2}, "P-00002": {"purchase": 1}}
    # the same export again (a run repeated after a kill): nothing counted twice
    again = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == {"imported": 0, "already_imported": True}, again
    assert "imported before" in again.stderr
    assert SqliteEventStore(tmp_path / "events.db").engagement() == {"P-00001": {"purchase": 2}, "P-00002": {"purchase": 1}}


def test_rank_metrics_and_split():
    truth = np.array([3.0, 2.0, 1.0, 0.0])
    assert spearman(truth, truth) == pytest.approx(1.0) and spearman(truth, -truth) == pytest.approx(-1.0)
    assert ndcg(truth, truth, k=2) == pytest.approx(1.0) and ndcg(-truth, truth, k=1) == 0.0
    ids = [f"P-{i:05d}" for i in range(1000)]
    train, heldout = split_ids(ids)
    assert not set(train) & set(heldout) and 150 < len(heldout) < 250
    assert all(is_heldout(i) for i in heldout)


def test_missing_weights_say_how_to_train_them(tmp_path):
    from fashion_studio.popularity.models import PopularityModels

    with pytest.raises(FileNotFoundError, match="fashion-studio popularity train"):
        PopularityModels.load(tmp_path)


def test_shipped_models_are_small_and_carry_their_card():
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 1_000_000
    card = (SHIPPED / "README.md").read_text()
    assert "simulated shoppers" in card and "| combined |" in card


def test_events_in_retrain_predictions_out_over_http(tmp_path):
    """Feedback is acknowledged only once stored (a killed gateway loses none); a retrain on the simulated
    shoppers' log is picked up by the running service, which then ranks a held-out article they prefer
    above one they avoid; bad feedback gets a 4xx naming the field, the value and the limit (404 for an unknown id)."""
    from fashion_studio.popularity.models import TrainConfig
    from fashion_studio.popularity.train import train
    from fashion_studio.products import load_catalog
    from fashion_studio.scoring import Scorer
    from fashion_studio.settings import Settings
    from tests.helpers import serving

    shop, db, models = tmp_path / "shop", tmp_path / "events.db", tmp_path / "popularity"
    catalog = write_catalog(demo_products(400, seed=1), shop)
    appeal = simulate(catalog, SqliteEventStore(db), ShopperConfig(seed=1)).appeal
    shutil.copytree(SHIPPED, models)
    env = {
        "FASHION_STORAGE_URL": str(tmp_path / "store"),
        "FASHION_PRODUCTS_DIR": str(shop),
        "FASHION_EVENTS_URL": f"sqlite:///{db}",
        "FASHION_POPULARITY_MODEL": str(models),
        "FASHION_WARMUP": "false",
    }
    # SIGKILL at the end: what was acknowledged must be in the event log without a clean shutdown.
    with serving("services.gateway:Studio", env, tmp_path / "server-1.log", timeout=300, stop_signal=signal.SIGKILL) as server:
        generated = httpx.post(f"{server.url}/generate", json={"prompt": "a red dress", "steps": 2}, timeout=120)
        assert generated.status_code == 200, generated.text
        image_id = Path(generated.json()["images"][0]["url"]).stem
        posted = [
            {"kind": "like", "product_id": "P-00007", "user": "u1"},
            {"kind": "click", "product_id": "P-00008", "timestamp": "2025-06-01T12:00:00Z"},
            {"kind": "view", "image_id": image_id, "timestamp": time.time() - 10},
        ]
        acknowledged = []
        for body in posted:
            reply = httpx.post(f"{server.url}/feedback", json=body, timeout=30)
            assert reply.status_code == 200, reply.text
            acknowledged.append(reply.json()["event_id"])

        bad = {
            "product_id": {"kind": "like", "product_id": "P-99999"},
            "image_id": {"kind": "like", "image_id": "gen-0123456789abcdef"},
            "kind": {"kind": "purchase", "product_id": "P-00007"},
            "timestamp": {"kind": "like", "product_id": "P-00007", "timestamp": "2999-01-01T00:00:00Z"},
        }
        for field, body in bad.items():
            reply = httpx.post(f"{server.url}/feedback", json=body, timeout=30)
            # an id it does not know is a 404, as on every route; a malformed value a 422
            assert reply.status_code == (404 if field in ("product_id", "image_id") else 422), (field, reply.text)
            error = reply.json()
            assert field in error["field"] and error["limit"] and "value" in error, error
        assert "2999" in str(httpx.post(f"{server.url}/feedback", json=bad["timestamp"], timeout=30).json()["value"])
        # a time no date can be written back from is refused before the event is stored (checked below)
        ancient = httpx.post(f"{server.url}/feedback", json={"kind": "view", "product_id": "P-00007", "timestamp": "0001-01-01T00:00:00+01:00"}, timeout=30)
        assert ancient.status_code == 422 and ancient.json()["field"] == "timestamp" and "2000-01-01" in ancient.json()["limit"], ancient.text

    store = SqliteEventStore(db)
    rows = list(store.events())
    stored = {(e.kind, e.subject_id) for e in rows if e.source == "api"}
    assert stored == {("like", "P-00007"), ("click", "P-00008"), ("view", image_id)}
    assert len([e for e in rows if e.source == "api"]) == len(acknowledged)

    heldout = sorted((p for p in catalog.products if is_heldout(p.product_id)), key=lambda p: appeal[p.product_id])
    liked, avoided = heldout[-1], heldout[0]

    with serving("services.gateway:Studio", env, tmp_path / "server-2.log", timeout=300) as server:
        # the running service picks up the retrained weights on its next batch
        summary = train(load_catalog(shop), store, Scorer.load(Settings()), models, TrainConfig(epochs=60))
        assert summary["train_products"] > 250

        def score(product) -> dict:
            import base64

            image = base64.b64encode(catalog.image_path(product).read_bytes()).decode()
            body = {"image": image, "type": product.product_type, "colour": product.colour, "pattern": product.pattern, "price": product.price}
            reply = httpx.post(f"{server.url}/popularity", json=body, timeout=60)
            assert reply.status_code == 200, reply.text
            return reply.json()

        top, bottom = score(liked), score(avoided)
        assert top["score"] > bottom["score"] and top["percentile"] > bottom["percentile"], (top, bottom)
        by_id = httpx.post(f"{server.url}/popularity", json={"image_id": image_id}, timeout=60)
        assert by_id.status_code == 200 and 0.0 <= by_id.json()["percentile"] <= 100.0, by_id.text
        unknown = httpx.post(f"{server.url}/popularity", json={"image_id": "gen-00000000ffff"}, timeout=30)
        assert unknown.status_code == 404 and unknown.json()["field"] == "image_id"
        malformed = httpx.post(f"{server.url}/popularity", json={"image_id": "not-a-key"}, timeout=30)
        assert malformed.status_code == 422 and malformed.json()["field"] == "image_id"
        # /generate ranks its candidates by predicted popularity when asked, and stores the prediction.
        ranked = httpx.post(f"{server.url}/generate", json={"prompt": "a blue shirt", "steps": 2, "num_images": 3, "rank_by_popularity": True}, timeout=120)
        assert ranked.status_code == 200, ranked.text
        predicted = [image["popularity"] for image in ranked.json()["images"]]
        assert len(predicted) == 3 and predicted == sorted(predicted, reverse=True), predicted
        stored = json.loads(Path(ranked.json()["images"][0]["url"]).with_suffix(".json").read_text())
        assert stored["popularity"] == predicted[0]
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert "fashion_popularity_predictions_total" in metrics


def test_library_predict_scores_images_with_or_without_metadata(tmp_path):
    """What the catalog pipeline calls: the shipped combined model on rendered articles."""
    from fashion_studio.popularity import predict
    from fashion_studio.settings import Settings

    catalog = write_catalog(demo_products(3, seed=2), tmp_path)
    images = catalog.load_images()
    scores = predict(images, [p.metadata() for p in catalog.products[:2]] + [None], Settings())
    assert len(scores) == 3 and all(np.isfinite(scores))
    with pytest.raises(InvalidInputError) as error:
        predict(images[:1], [{"colour": "mauve"}], Settings())
    assert error.value.field == "colour"
