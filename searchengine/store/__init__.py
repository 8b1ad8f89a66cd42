"""Collections on disk: FAISS indexes + DuckDB metadata + collection.json, written crash-safely.

    from searchengine.store import Collection
    coll = Collection.create("data/c", model_id=enc.model_id, dim=enc.dim)
    ids = coll.add(clips=[{"source_key": "a", "source_path": "/x/a.wav", "duration": 3.2}], speech=vecs)
    scores, ids = coll.search("speech", query_vecs, k=10)
"""

from searchengine.store.collection import (
    ALL_KINDS,
    CAPTION_KINDS,
    KINDS,
    SPEAKER_KIND,
    Caption,
    Collection,
    CollectionError,
    ModelMismatchError,
    Transaction,
)
from searchengine.store.faiss_index import choose_factory

__all__ = [
    "ALL_KINDS",
    "CAPTION_KINDS",
    "KINDS",
    "SPEAKER_KIND",
    "Caption",
    "Collection",
    "CollectionError",
    "ModelMismatchError",
    "Transaction",
    "choose_factory",
]
