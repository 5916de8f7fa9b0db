"""Image + JSON metadata storage behind an fsspec URL (a local folder by default; s3:// and others).

A record is `<key>.png` plus `<key>.json`. The PNG is written first and the JSON last, each
atomically (a temporary name, then a rename where the filesystem has one; object stores write whole
objects anyway), so a reader that finds the JSON finds a complete image, and no reader ever sees half
a file. The JSON keeps seed 003's keys (`sample_id`, `original_description`, `generation_prompt`,
`clip_prompt`, `clip_score`, `image_path`) so its users' tooling keeps working.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from PIL import Image

from fashion_studio.errors import InvalidInputError
from fashion_studio.images import png_of
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAFE_KEY = re.compile(r"[^A-Za-z0-9._-]+")


def safe_key(text: str, max_len: int = 120) -> str:
    """A storage key made from user text: no path separators, no dot-dot, bounded."""
    key = _SAFE_KEY.sub("_", text).strip("._") or "item"
    return key[:max_len]


@dataclass(frozen=True)
class StoredRecord:
    key: str
    image_url: str
    metadata_url: str


class Storage:
    def __init__(self, url: str, **options: Any) -> None:
        """`options` go to the fsspec filesystem (for s3fs: `endpoint_url`, `key`, `secret`, ...)."""
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **options)
        self.fs.makedirs(self.root, exist_ok=True)
        self._local = "file" in _protocols(self.fs)

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> Storage:
        """Storage at `url` (default: `storage_url`) with the object-store endpoint and credentials of the settings."""
        url = url or settings.storage_url
        return cls(url, **storage_options(url, settings))

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def url_of(self, name: str) -> str:
        if self._local:
            return self._path(name)
        protocol = _protocols(self.fs)[0]
        return f"{protocol}://{self._path(name)}"

    def exists(self, key: str) -> bool:
        """A record exists once its metadata (written last) exists."""
        return self.fs.exists(self._path(f"{key}.json"))

    def write_bytes(self, name: str, data: bytes) -> None:
        target = self._path(name)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if not self._local:
            self.fs.pipe_file(target, data)
            return
        temp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name.rsplit('/', 1)[-1]}"
        try:
            with self.fs.open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
            self.fs.mv(temp, target)
        finally:
            if self.fs.exists(temp):
                self.fs.rm(temp)

    def put(self, key: str, image: Image.Image | bytes, metadata: dict[str, Any]) -> StoredRecord:
        """Store one image (a PIL image, or PNG bytes as they are, with no second encode) and its
        metadata; the metadata gets `image_path` and `image_url`."""
        if isinstance(image, Image.Image):
            image = png_of(image)
        elif not image.startswith(PNG_SIGNATURE):
            raise ValueError(f"{key}: image bytes are not a PNG")
        image_url = self.url_of(f"{key}.png")
        self.write_bytes(f"{key}.png", image)
        record = {**metadata, "image_path": image_url, "image_url": image_url}
        self.write_bytes(f"{key}.json", json.dumps(record, ensure_ascii=False, indent=2, default=_jsonable).encode())
        logger.debug("stored %s", image_url)
        return StoredRecord(key=key, image_url=image_url, metadata_url=self.url_of(f"{key}.json"))

    def get_metadata(self, key: str) -> dict[str, Any]:
        return json.loads(self.fs.cat_file(self._path(f"{key}.json")))

    def get_image(self, key: str) -> Image.Image:
        return Image.open(io.BytesIO(self.fs.cat_file(self._path(f"{key}.png")))).copy()

    def keys(self) -> list[str]:
        """Keys of complete records."""
        names = (n.rsplit("/", 1)[-1] for n in self.fs.ls(self.root, detail=False))
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(("_", ".")))

    def read_bytes(self, name: str) -> bytes:
        """A stored file's bytes; FileNotFoundError when there is none."""
        return self.fs.cat_file(self._path(name))

    def names(self, folder: str) -> list[str]:
        """Names directly under `folder`, sorted; none when the folder does not exist."""
        try:
            entries = self.fs.ls(self._path(folder), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def recent(self, limit: int, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """The total count of complete records, and the metadata of `limit` of them from `offset`,
        newest first (by the time the metadata was written, which a file listing gives without
        reading every record). Each carries its `key`."""
        entries = [
            e
            for e in self.fs.ls(self.root, detail=True)
            if e["type"] == "file" and (name := e["name"].rsplit("/", 1)[-1]).endswith(".json") and not name.startswith(("_", "."))
        ]
        entries.sort(key=lambda e: (_modified(e), e["name"]), reverse=True)
        page = []
        for entry in entries[offset : offset + limit]:
            key = entry["name"].rsplit("/", 1)[-1][: -len(".json")]
            try:
                page.append({**self.get_metadata(key), "key": key})
            except FileNotFoundError:  # deleted since the listing
                continue
        return len(entries), page


def storage_options(url: str, settings: Settings) -> dict[str, Any]:
    """The fsspec options of the settings that apply to `url`'s filesystem (S3 only, today)."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    # Several gateway replicas and batch jobs write to one bucket: a cached listing would hide their
    # records and cause work to be done twice.
    options: dict[str, Any] = {"use_listings_cache": False}
    if settings.storage_endpoint_url:
        options["endpoint_url"] = settings.storage_endpoint_url
    if settings.storage_key is not None and settings.storage_secret is not None:
        options["key"] = settings.storage_key.get_secret_value()
        options["secret"] = settings.storage_secret.get_secret_value()
    if settings.storage_region:
        options["client_kwargs"] = {"region_name": settings.storage_region}
    return options


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _modified(entry: dict[str, Any]) -> float:
    """A listing entry's modification time in seconds: `mtime` (local), `LastModified` (S3) or `created`."""
    value = entry.get("mtime", entry.get("LastModified", entry.get("created", 0)))
    return value.timestamp() if hasattr(value, "timestamp") else float(value or 0)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


@contextlib.contextmanager
def local_copy(source: str, settings: Settings) -> Iterator[Path]:
    """A local path for `source`: the path itself, or, for a URL (s3://...), a temporary copy read
    with the storage settings' endpoint and credentials (a batch job's input, as KServe's storage
    initializer reads model weights, with no shared volume to fill)."""
    if "://" not in source:
        yield Path(source)
        return
    import tempfile

    name = source.rstrip("/").rsplit("/", 1)[-1]
    try:
        with fsspec.open(source, "rb", **storage_options(source, settings)) as remote:
            data = remote.read()
    except (OSError, ValueError) as exc:
        raise InvalidInputError("file", source, f"must be a readable object ({type(exc).__name__}: {exc})") from exc
    with tempfile.TemporaryDirectory(prefix="catalog-input-") as folder:
        local = Path(folder) / name
        local.write_bytes(data)
        yield local
