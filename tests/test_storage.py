from __future__ import annotations

import json

from PIL import Image

from fashion_studio.storage import Storage, safe_key


def test_put_writes_png_then_metadata_and_reads_back(tmp_path):
    storage = Storage(str(tmp_path / "store"))
    image = Image.new("RGB", (16, 8), (200, 10, 10))
    record = storage.put("k1", image, {"sample_id": "k1", "clip_score": 27.5})
    assert storage.exists("k1")
    meta = storage.get_metadata("k1")
    assert meta["sample_id"] == "k1" and meta["image_path"] == record.image_url
    assert storage.get_image("k1").size == (16, 8)
    assert storage.keys() == ["k1"]
    assert json.loads((tmp_path / "store" / "k1.json").read_text())["clip_score"] == 27.5
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".tmp-")]


def test_record_without_metadata_does_not_exist(tmp_path):
    storage = Storage(str(tmp_path))
    storage.write_bytes("half.png", b"\x89PNG")
    assert not storage.exists("half")
    assert storage.keys() == []


def test_memory_filesystem_url():
    storage = Storage("memory://fashion-test")
    storage.put("a", Image.new("RGB", (8, 8)), {"x": 1})
    assert storage.get_metadata("a")["image_url"] == "memory:///fashion-test/a.png"
    assert storage.keys() == ["a"]


def test_safe_key_strips_path_tricks():
    assert safe_key("../../etc/passwd") == "etc_passwd"
    assert "/" not in safe_key("a/b\\c")
    assert len(safe_key("x" * 1000)) == 120
