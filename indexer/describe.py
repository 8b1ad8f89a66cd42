"""The last step of an indexing run: words for measured numbers, generated captions, speaker clusters.

It works on the whole collection, not on the files of this run, because all three depend on the
collection as a whole: bins are corpus quantiles, so a new batch of clips can move every word; and a
new clip can join two speaker clusters. It is cheap next to embedding (SQL over the attribute
columns, one FAISS k-NN pass over the speaker vectors, and text embedding only for captions whose
text changed), and staged in the caller's transaction, so it commits with the run's last batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from searchengine.attributes import COLUMNS
from searchengine.attributes.words import WORD_COLUMNS, caption, compute_bins, words_for
from searchengine.store import SPEAKER_KIND, Transaction
from searchengine.store.schema import quote_ident, table_columns

SAME_SPEAKER_COSINE = 0.80
"""Two clips whose speaker vectors are at least this close are linked into one speaker cluster.
On the generated corpus (60 clips, 49 voices) 0.80 gives 49 clusters, 86 % of them single-voice;
but there the generator shifts pitch by up to 7 semitones and adds noise and reverb per clip, which
moves GE2E vectors more than the voice does (same-voice pairs: median cosine 0.56, different voices
0.53), so clusters group clips that sound alike rather than recover synthesizer voices."""
CLUSTER_NEIGHBOURS = 16
GENDER_LABEL_COLUMN = "gender"
"""A manifest column holding 'female'/'male' wins over the estimate from the speaker vector."""


@dataclass
class Described:
    """What `describe` changed."""

    clips: int
    captions_written: int
    captions_removed: int
    clusters: int


def describe(tx: Transaction, encoder: Any) -> Described:
    """Bin, word, caption and cluster every measured clip of the collection (inside `tx`)."""
    con = tx.con
    cols = table_columns(con, "clips")
    if "m_loudness_dbfs" not in cols:  # nothing was ever measured
        return Described(0, 0, 0, 0)
    label = f"lower({quote_ident(GENDER_LABEL_COLUMN)})" if GENDER_LABEL_COLUMN in cols else "NULL"
    measured = ", ".join(quote_ident(c) for c in COLUMNS if c in cols)
    cur = con.execute(
        f"SELECT id, global_caption, CASE WHEN {label} IN ('female', 'male') THEN {label} ELSE m_gender_est END"
        f" AS m_gender, {measured} FROM clips WHERE m_loudness_dbfs IS NOT NULL ORDER BY id"
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
    bins = compute_bins(rows)
    tx.coll.info["attribute_bins"] = bins
    words = [words_for(bins, r) for r in rows]
    ids = [r["id"] for r in rows]
    values: dict[str, list[Any]] = {"m_gender": [r["m_gender"] for r in rows]}
    for c in WORD_COLUMNS:
        values[c] = [w[c] for w in words]
    tx.set_columns(ids, values, {"m_gender": "VARCHAR", **WORD_COLUMNS})

    written, removed = _write_captions(tx, encoder, rows, words)
    clusters = _cluster_speakers(tx)
    return Described(len(rows), written, removed, clusters)


def _write_captions(tx: Transaction, encoder: Any, rows: list[dict], words: list[dict]) -> tuple[int, int]:
    """A generated global caption for every measured clip without a given one; only changed texts are
    re-embedded, and captions of clips that now have a given caption are dropped."""
    old: dict[int, tuple[int, str]] = {
        int(c): (int(i), t)
        for i, c, t in tx.con.execute("SELECT id, clip_id, text FROM captions WHERE generated AND kind = 'global'").fetchall()
    }
    want: dict[int, str] = {
        int(r["id"]): caption(w, r["m_gender"]) for r, w in zip(rows, words, strict=False) if not r["global_caption"]
    }
    stale = [cap for clip, (cap, text) in old.items() if want.get(clip) != text]
    new = [(clip, text) for clip, text in want.items() if clip not in old or old[clip][1] != text]
    tx.delete_captions(stale)
    if new:
        texts = [t for _, t in new]
        vectors = np.asarray(encoder.encode_text(texts), np.float32)
        tx.add_captions([c for c, _ in new], "global", texts, vectors, generated=True)
    return len(new), len(stale)


def speaker_clusters(ids: np.ndarray, vectors: np.ndarray, threshold: float = SAME_SPEAKER_COSINE) -> np.ndarray:
    """Cluster label per clip: connected components of the k-NN graph cut at `threshold` cosine, each
    labelled with its smallest clip id (stable when unrelated clips are added)."""
    n = len(ids)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, np.float32))
        sims, nbrs = index.search(np.ascontiguousarray(vectors, np.float32), min(CLUSTER_NEIGHBOURS + 1, n))
        for i in range(n):
            for s, j in zip(sims[i], nbrs[i], strict=False):
                if j >= 0 and j != i and s >= threshold:
                    a, b = find(i), find(int(j))
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(n)])
    first = {}
    for i in np.argsort(ids):
        first.setdefault(int(roots[i]), int(ids[i]))
    return np.array([first[int(r)] for r in roots], np.int64)


def _cluster_speakers(tx: Transaction) -> int:
    """Store `m_speaker_cluster` for every clip with a speaker vector; returns the number of clusters."""
    from searchengine.store import faiss_index as fi

    ids, vectors = fi.ids_and_vectors(tx.coll.indexes[SPEAKER_KIND])
    if not len(ids):
        return 0
    labels = speaker_clusters(np.asarray(ids, np.int64), vectors)
    tx.set_columns([int(i) for i in ids], {"m_speaker_cluster": [int(x) for x in labels]}, {"m_speaker_cluster": "BIGINT"})
    return len(set(labels.tolist()))
