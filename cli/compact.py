"""`clsp-search compact COLLECTION`: merge a collection's segments (searchengine.store.segments).

Commits add small segments and deletions leave tombstones; compacting merges every index kind into
one segment (IVF trained and recall-checked once the merged size calls for it), drops deleted
vectors and removes the replaced files. One commit: a crash leaves the previous generation, and a
server following the collection moves to the merged generation at its next reload. The merge is
built while the collection's DuckDB file is free and takes it only to commit, so a server keeps
taking snapshots and an indexer writing meanwhile goes on: what it commits stays, in segments of its
own, and the indexer takes in the merged generation at its next commit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_err = Console(stderr=True)


def compact(
    collection: Annotated[Path, typer.Argument(help="Collection directory (made by `clsp-search index`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a sentence.")] = False,
) -> None:
    """Merge every index kind's segments into one, leaving deleted vectors out."""
    from searchengine.store import Collection, CollectionError

    try:
        coll = Collection.open(collection)
        coll.release_between_commits = True
    except CollectionError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    try:
        before = {k: len(v) for k, v in coll.info.get("segments", {}).items()}
        started = time.perf_counter()
        coll.compact()
        seconds = time.perf_counter() - started
        after = {k: len(v) for k, v in coll.info["segments"].items()}
        out = {"generation": coll.generation, "segments_before": before, "segments_after": after,
               "seconds": round(seconds, 3), "indexes": {k: v["factory"] for k, v in coll.info["indexes"].items()}}
    finally:
        coll.close()
    if as_json:
        print(json.dumps(out))
    else:
        print(f"{collection}: generation {out['generation']}, segments {before} -> {after} in {seconds:.1f} s")
