"""Model weights from object storage into a local folder before a service starts: what an init
container runs (`fashion-studio models pull SOURCE DEST --revision REV`), as KServe's storage
initializer does, so that no shared ReadOnlyMany volume has to be filled and kept in step.

A model lives in the bucket under one folder per revision (`s3://bucket/FLUX.1-schnell/<revision>/`,
the Hugging Face layout inside), so the overlays pin a revision, and a new one is a new folder, never an
overwrite. The copy is staged beside DEST and renamed into place whole; DEST records the revision it
holds, so a restarted pod with the folder still there skips the download. Credentials come from the
environment the way botocore finds them (workload identity: AWS_ROLE_ARN and a projected token; or
AWS_ENDPOINT_URL_S3 for another S3 server), never from arguments.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Optional

import fsspec
import typer

from fashion_studio.errors import FashionStudioError

logger = logging.getLogger(__name__)

REVISION_FILE = ".fashion-studio-revision"


class PullError(FashionStudioError):
    """The source holds nothing to pull, or a copied file does not match its object."""


@dataclass(frozen=True)
class PullResult:
    dest: Path
    revision: str
    files: int
    bytes: int
    skipped: bool


def held_revision(dest: Path) -> str | None:
    marker = dest / REVISION_FILE
    return marker.read_text().strip() if marker.is_file() else None


def _wanted(relative: str, include: tuple[str, ...]) -> bool:
    return not include or any(fnmatch.fnmatchcase(relative, pattern) for pattern in include)


def pull(source: str, dest: Path | str, revision: str, include: tuple[str, ...] = (), storage_options: dict[str, Any] | None = None) -> PullResult:
    """Copy `source`/`revision`/ (every file, or those matching an `include` glob) into `dest`."""
    dest = Path(dest)
    if not revision or "/" in revision:
        raise PullError(f"revision {revision!r}: give one pinned revision folder name (a commit hash or a tag)")
    if held_revision(dest) == revision:
        logger.info("%s already holds %s revision %s", dest, source, revision)
        return PullResult(dest, revision, 0, 0, skipped=True)
    fs, root = fsspec.core.url_to_fs(f"{source.rstrip('/')}/{revision}", **(storage_options or {}))
    root = root.rstrip("/")
    found = fs.find(root, detail=True)
    objects = {path: info for path, info in found.items() if info.get("type") == "file"}
    selected = {str(PurePosixPath(path).relative_to(root)): info for path, info in objects.items()}
    selected = {relative: info for relative, info in selected.items() if _wanted(relative, include)}
    if not selected:
        raise PullError(f"nothing to pull under {source}/{revision}" + (f" matching {list(include)}" if include else "") + f" ({len(objects)} objects there)")
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    total = 0
    for relative, info in sorted(selected.items()):
        local = staging / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(info["name"], str(local))
        size = local.stat().st_size
        if info.get("size") is not None and size != int(info["size"]):
            raise PullError(f"{source}/{revision}/{relative}: copied {size} bytes, the object has {info['size']}")
        total += size
    (staging / REVISION_FILE).write_text(revision + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    logger.info("pulled %d files (%.1f MB) of %s revision %s into %s", len(selected), total / 1e6, source, revision, dest)
    return PullResult(dest, revision, len(selected), total, skipped=False)


def pull_command(
    source: Annotated[str, typer.Argument(help="Model folder URL without the revision: s3://bucket/prefix (any fsspec URL).")],
    dest: Annotated[Path, typer.Argument(help="Local folder to fill (the pod's model volume).")],
    revision: Annotated[str, typer.Option(help="The pinned revision: the folder under SOURCE to copy.")],
    include: Annotated[Optional[list[str]], typer.Option(help="Copy only files matching this glob (repeatable).")] = None,
) -> None:
    """Copy a pinned model revision from object storage into a local folder (an init container's job)."""
    try:
        result = pull(source, dest, revision, tuple(include or ()))
    except (FashionStudioError, OSError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    action = "kept" if result.skipped else f"pulled {result.files} files, {result.bytes} bytes,"
    typer.echo(f"{action} {source} revision {result.revision} in {result.dest}")
