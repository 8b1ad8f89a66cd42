"""Segment files on disk: loading the generation DuckDB names, rolling a half-finished commit forward,
and removing files no generation names any more.

A commit writes each new segment to `<file>.pending` (fsynced), commits DuckDB (which lists the file
under its final name), then renames. So after a crash a listed file may exist only as `.pending`
(roll forward: rename it, or read it as is when read-only), and unlisted files are leftovers of a
commit DuckDB never reached or of segments a merge replaced (a writer removes them on open).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import numpy as np

from searchengine.store import faiss_index as fi
from searchengine.store import segment_log
from searchengine.store.segments import Segment, SegmentedIndex

_LEGACY_FILE = re.compile(r"^(speech|global|fine|speaker)\.faiss$")
_PENDING_ANY = re.compile(r"^(speech|global|fine|speaker)\..*\.pending$")


def fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve(root: Path, files: Iterable[str], read_only: bool) -> dict[str, Path]:
    """Where each listed segment file is to be read from, finishing renames a crash interrupted."""
    out: dict[str, Path] = {}
    moved = False
    for name in files:
        final, pending = root / name, root / segment_log.pending_name(name)
        if final.is_file():
            out[name] = final
        elif pending.is_file():
            if read_only:
                out[name] = pending
            else:
                os.replace(pending, final)
                out[name], moved = final, True
        else:
            raise FileNotFoundError(f"{root}: segment file {name} is listed by the committed generation but missing")
    if moved:
        fsync_dir(root)
    return out


def remove_unlisted(root: Path, listed: set[str]) -> list[str]:
    """Delete segment files and pending files that no committed generation lists (a writer's open)."""
    gone = []
    for name in os.listdir(root):
        if name in listed or name.removesuffix(".pending") in listed:  # a listed file not yet renamed
            continue
        if segment_log.SEGMENT_FILE.match(name) or _LEGACY_FILE.match(name) or _PENDING_ANY.match(name):
            os.remove(root / name)
            gone.append(name)
    if gone:
        fsync_dir(root)
    return gone


def load(
    root: Path, con: duckdb.DuckDBPyConnection, dims: Mapping[str, int], read_only: bool, mmap: bool = False,
    reuse: Mapping[str, Segment] | None = None,
) -> dict[str, SegmentedIndex]:
    """Every kind's segments and tombstones as the DuckDB connection's generation lists them.
    `reuse`: segments already in memory by file name (a file never changes), so only new ones are read."""
    rows = segment_log.read(con)
    reuse = reuse or {}
    if not read_only:
        remove_unlisted(root, {r.file for r in rows})
    paths = resolve(root, [r.file for r in rows if r.file not in reuse], read_only)
    out = {kind: SegmentedIndex(d) for kind, d in dims.items()}
    for kind in dims:
        dead = segment_log.tombstones(con, kind)
        for r in (r for r in rows if r.kind == kind):
            index = reuse[r.file].index if r.file in reuse else fi.read(paths[r.file], mmap=mmap)
            seg = Segment(index, r.file)
            if len(dead):
                seg.dead = dead[np.isin(dead, seg.ids, assume_unique=True)]
            out[kind].segments.append(seg)
    return out


def place_pending(seg: Segment, root: Path, file: str) -> Path:
    """Put a new segment at its pending name, durably: written from memory, or renamed there when
    another process already wrote it (`Segment.source`; copied across file systems); returns the path."""
    path = root / segment_log.pending_name(file)
    if seg.source is not None:
        try:
            os.replace(seg.source, path)
            fsync_dir(root)
            return path
        except OSError:
            pass  # another file system: written below
    fi.write(seg.index, path)
    return path
