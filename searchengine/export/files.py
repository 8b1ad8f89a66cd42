"""Writing exports so that a crash or an error leaves the old output or none, never half of one:
files are written beside their target, fsynced and renamed over it; folders are built under a
temporary name and renamed into place."""

from __future__ import annotations

import gzip
import os
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

from searchengine.export.errors import ExportError

STORED = {".wav", ".flac", ".arrow", ".parquet"}
"""Zipped without compression: audio and arrow compress little, and deflating them costs seconds."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Text lines to `path` (gzip-compressed when it ends in .gz), new-then-fsync-then-rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                    for line in lines:
                        gz.write(line.encode("utf-8"))
            else:
                for line in lines:
                    raw.write(line.encode("utf-8"))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """Bytes to a new file inside a folder that is itself being built (no rename needed)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def staging_folder(out: Path) -> Path:
    """An empty folder to build `out` in; `out` itself must not exist, or be an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not an empty folder; remove it or choose another --output")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def publish_folder(tmp: Path, out: Path) -> None:
    """Move a finished staging folder to `out` in one rename."""
    fsync_dir(tmp)
    if out.is_dir():
        out.rmdir()  # empty, checked by staging_folder
    os.rename(tmp, out)
    fsync_dir(out.parent)


def zip_folder(folder: Path, target: Path) -> None:
    """Every file under `folder` into a zip at `target`, paths relative to `folder`."""
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            method = zipfile.ZIP_STORED if path.suffix.lower() in STORED else zipfile.ZIP_DEFLATED
            zf.write(path, path.relative_to(folder).as_posix(), compress_type=method)
