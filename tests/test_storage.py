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


def test_png_of_encodes_at_the_settings_zlib_level(monkeypatch):
    import io

    import numpy as np

    from fashion_studio import images
    from fashion_studio.settings import Settings

    rng = np.random.default_rng(0)
    image = Image.fromarray((np.linspace(0, 255, 128)[None, :, None] + rng.normal(0, 3, (128, 128, 3))).clip(0, 255).astype(np.uint8))

    def encoded(level: int) -> bytes:
        monkeypatch.setattr(images, "get_settings", lambda: Settings(png_compress_level=level))
        return images.png_of(image)

    assert Settings().png_compress_level == 1
    stored, fast = encoded(0), encoded(1)
    assert len(stored) > 128 * 128 * 3 > len(fast)  # level 0 stores, level 1 compresses
    reference = io.BytesIO()
    image.save(reference, format="PNG", compress_level=1)
    assert fast == reference.getvalue()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))), np.asarray(image))  # lossless at every level
