"""Is a collection whole? Every FAISS id has its row, every row its vector, every source once.

`problems(coll)` is what the crash tests and benchmarks assert empty after each kill and resume,
and what an operator can run on a collection that went through a crash (`Collection.open` has
already rolled an interrupted commit forward or back by then).
"""

from __future__ import annotations

import numpy as np

from searchengine.store import faiss_index as fi
from searchengine.store.collection import CAPTION_KINDS, SPEAKER_KIND, Collection


def _ids(coll: Collection, kind: str) -> np.ndarray:
    ids, _ = fi.ids_and_vectors(coll.index(kind))
    return np.sort(np.asarray(ids, np.int64))


def problems(coll: Collection) -> list[str]:
    """Every inconsistency found, as sentences; an empty list means the collection is whole."""
    con = coll.con.cursor()
    try:
        out: list[str] = []
        clips = np.sort(con.execute("SELECT id FROM clips").fetchnumpy()["id"].astype(np.int64))
        speech = _ids(coll, "speech")
        if len(np.unique(speech)) != len(speech):
            out.append("speech index holds an id twice")
        if not np.array_equal(np.unique(speech), clips):
            out.append(f"speech ids and clip rows differ: {len(np.setdiff1d(speech, clips))} ids without a row, "
                       f"{len(np.setdiff1d(clips, speech))} rows without a vector")
        speaker = _ids(coll, SPEAKER_KIND)
        if len(np.setdiff1d(speaker, clips)):
            out.append(f"{len(np.setdiff1d(speaker, clips))} speaker vectors without a clip row")
        for kind in CAPTION_KINDS:
            rows = con.execute("SELECT id FROM captions WHERE kind = ?", [kind]).fetchnumpy()["id"].astype(np.int64)
            vecs = _ids(coll, kind)
            if not np.array_equal(np.sort(rows), vecs):
                out.append(f"{kind} caption ids and rows differ ({len(vecs)} vectors, {len(rows)} rows)")
        orphans = con.execute("SELECT count(*) FROM captions WHERE clip_id NOT IN (SELECT id FROM clips)").fetchone()[0]
        if orphans:
            out.append(f"{orphans} captions of clips that are gone")
        dup = con.execute(
            "SELECT count(*) FROM (SELECT source_key, segment FROM clips GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
        if dup:
            out.append(f"{dup} source segments stored more than once")
        return out
    finally:
        con.close()
