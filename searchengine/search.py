"""Search a collection: by description (text -> speech, fused with caption indexes), by example
(audio -> speech), with metadata filters and stable pagination.

    from searchengine.search import Searcher, SearchOptions
    searcher = Searcher.open("data/mycorpus")              # read-only, with the collection's own model
    page = searcher.search_text("a breathy young woman whispering",
                                SearchOptions(top_k=20, filter={"field": "duration", "op": ">", "value": 3}))
    for hit in page.hits: print(hit.id, hit.score, hit.matched, hit.caption)

How a query flows: the query becomes a vector with the model the collection was built with (vectors
from two models are not comparable, so that is checked, not assumed); every requested index returns
its best candidates; candidates become clips (a caption hit names its clip), each clip once; the
lists are fused; the page is sliced after sorting by (score desc, clip id asc), so equal scores
always come out in the same order and page 2 continues page 1.

Filters are compiled by `searchengine.filters` to parameterised SQL, run in DuckDB to get the ids
that pass, and handed to FAISS. A selective filter (few ids pass) goes to FAISS as an `IDSelector`,
so the index only scores allowed ids and a filter keeping 1 % of clips still fills the page; a loose
one over-fetches and drops, which is cheaper than building a selector over most of the collection.

Every method that touches DuckDB takes an optional cursor: the server gives each request its own, as
DuckDB connections are not meant to be shared between threads. Callers (the API, the CLI) ask the
`Searcher` for what they need by name and never write SQL themselves; every statement here binds its
values and quotes its identifiers.

Beside it: `searchengine.fusion` (how index rankings become one), `searchengine.store.faiss_index`
(filtered FAISS search over arrays) and `searchengine.model.registry` (which encoder a collection's
model id names). Their names that callers of a search use are importable from here too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from searchengine.filters import Column, CompiledFilter, FilterError, compile_filter, filterable_columns
from searchengine.fusion import (
    DEFAULT_FUSION,
    DEFAULT_WEIGHTS,
    FUSION_DEPTH,
    FUSIONS,
    contributions,
    rrf,
    weighted_sum,
)
from searchengine.lru import LruCache
from searchengine.store import CAPTION_KINDS, Collection, CollectionError, ModelMismatchError
from searchengine.store.faiss_index import search_groups, search_ids
from searchengine.understanding import DEFAULT_UNDERSTAND
from searchengine.voice import (
    DEFAULT_VOICE_WEIGHT,
    check_voice_weight,
    speaker_query,
    stored_speaker_query,
    voice_ranking,
    voice_weights,
)

INDEXES = ("speech", "global", "fine")
RANKED_INDEXES = (*INDEXES, "speaker")
"""Every index a ranking can draw on: the speaker index joins the speech index for example queries."""

DEFAULT_INDEXES: tuple[str, ...] = ("speech", "global", "fine")
"""Text queries search the speech index and both caption indexes, fused (see benchmarks/RESULTS.md)."""

TIE_MARGIN = 16
"""Extra candidates fetched beyond the page, so equal scores at the page edge are ordered by id, not
by the order FAISS happened to return them."""

MAX_TOP_K = 100_000
"""Hard ceiling of the core on `SearchOptions.top_k`: curation (`searchengine.curate`) pages this deep
to fill exports, and the query CLI's --top-k allows as much."""

MAX_PAGE_TOP_K = 1000
"""The most hits one page of interactive results may ask for: the HTTP API's schema bound and the
default of its configurable limit (`api.settings.Limits.max_top_k`). A person reads far fewer; deeper
pages are what `offset` and exports are for."""

RECORD_CACHE_SIZE = 20_000
"""Clip records (columns and captions) a Searcher keeps in memory, most recently shown first."""


class SearchError(ValueError):
    """A query that cannot be answered as asked (bad option, empty query); the message says why."""


class ClipNotFoundError(LookupError):
    """A clip id the collection does not hold."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)
        super().__init__(f"no clip with id {', '.join(map(str, self.ids))} in this collection")


@dataclass(frozen=True)
class SearchOptions:
    """What to search and which page to return."""

    top_k: int = 10
    offset: int = 0
    filter: Mapping[str, Any] | Sequence[Any] | None = None
    indexes: Sequence[str] = DEFAULT_INDEXES
    fusion: str = DEFAULT_FUSION
    weights: Mapping[str, float] | None = None
    strategy: str = "auto"  # how filters reach FAISS: auto | exact | selector | overfetch (benchmarks compare them)
    understand: bool = DEFAULT_UNDERSTAND  # text queries: fuse measured attributes the description names (searchengine.understanding)
    drop: Sequence[str] = ()  # understood constraints to leave out, by key ("gender:male")
    voice_weight: float | None = None  # audio and clip queries: 0 style (speech index) .. 1 voice (speaker index); None: DEFAULT_VOICE_WEIGHT

    def validated(self) -> SearchOptions:
        if not 1 <= int(self.top_k) <= MAX_TOP_K:
            raise SearchError(f"top_k must be between 1 and {MAX_TOP_K}")
        if int(self.offset) < 0:
            raise SearchError("offset must be >= 0")
        unknown = [i for i in self.indexes if i not in INDEXES]
        if unknown or not self.indexes:
            raise SearchError(f"indexes must be a non-empty subset of {', '.join(INDEXES)} (got {list(self.indexes)})")
        if self.fusion not in FUSIONS:
            raise SearchError(f"fusion must be one of {', '.join(FUSIONS)}")
        if self.strategy not in ("auto", "exact", "selector", "overfetch"):
            raise SearchError("strategy must be auto, exact, selector or overfetch")
        try:
            check_voice_weight(self.voice_weight)
        except ValueError as exc:
            raise SearchError(str(exc)) from None
        return self


@dataclass
class Hit:
    """One clip in a result page, with the evidence for it."""

    id: int
    rank: int
    score: float
    matched: str  # the index whose evidence counted most for this clip (speech, global, fine or speaker)
    scores: dict[str, float]  # cosine of the query with this clip in each index that returned it
    caption: dict[str, Any] | None  # the caption that matched, when a caption index matched
    clip: dict[str, Any] = field(default_factory=dict)  # metadata row (filterable columns + paths)
    captions: dict[str, Any] = field(default_factory=dict)  # {"global": str | None, "fine": [str]}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with copies of the top-level containers (`asdict` deep-copies every value,
        which cost more than the search itself for a page of 20 hits with their metadata). The lists
        inside `clip` stay shared with this hit: its record is already its own copy, made from the
        Searcher's record cache, and copying it again was a tenth of a cached search's time."""
        captions = {k: list(v) if isinstance(v, list) else v for k, v in self.captions.items()}
        return {"id": self.id, "rank": self.rank, "score": self.score, "matched": self.matched,
                "scores": dict(self.scores), "caption": None if self.caption is None else dict(self.caption),
                "clip": dict(self.clip), "captions": captions}


class AudioSource(NamedTuple):
    """Where a clip's sound is: its file and the segment of it (seconds; None for the whole file)."""

    path: str
    start: float | None
    end: float | None


@dataclass
class SearchPage:
    """A page of hits plus what the caller needs to show or page through them."""

    hits: list[Hit]
    top_k: int
    offset: int
    candidates: int  # clips that pass the filter (the whole collection without one)
    indexes: list[str]
    fusion: str | None
    strategy: str  # how the filter was applied: none, exact, selector or overfetch
    took_ms: float
    excluded: list[int] = field(default_factory=list)
    understood: list[dict[str, Any]] = field(default_factory=list)  # constraints read from the description
    uncovered: list[dict[str, Any]] = field(default_factory=list)  # its words no measured attribute covers
    notices: list[dict[str, Any]] = field(default_factory=list)  # what neither model nor attributes can rank
    voice_weight: float | None = None  # the speaker index's share in an example query's ranking (None: text)
    understand: bool | None = None  # whether a text query's description was understood (None: not a text query)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(hits=[h.to_dict() for h in self.hits], indexes=list(self.indexes), excluded=list(self.excluded))
        return out


# ------------------------------------------------------------------------------------------ model
def resolve_encoder(collection: Collection, model: str | None = None, device: str = "auto") -> Any:
    """The encoder whose vectors the collection holds (`searchengine.model.registry.load_model_with_id`).

    `model` (a name or a checkpoint directory) is loaded and checked against the collection's model id.
    Without it the bundled model named in the id is tried, then the model specs the indexing runs
    recorded. Anything else would put query vectors in a different space than the stored ones.
    """
    from searchengine.model.registry import ModelNotFoundError, WrongModelError, load_model_with_id

    wanted = collection.model_id
    try:
        return load_model_with_id(wanted, model, () if model else collection.recorded_model_specs(), device)
    except WrongModelError as exc:
        raise ModelMismatchError(collection.path, wanted, exc.offered) from None
    except ModelNotFoundError as exc:
        raise CollectionError(
            f"cannot find the model {wanted} this collection was built with; pass --model PATH to its "
            f"checkpoint. Tried: {'; '.join(exc.tried) or 'nothing'}"
        ) from None


# ------------------------------------------------------------------------------------------ searcher
class Searcher:
    """Queries over one open collection with its encoder. Thread-safe for concurrent reads when each
    caller passes its own DuckDB cursor (FAISS searches on a read-only index are thread-safe)."""

    def __init__(self, collection: Collection, encoder: Any) -> None:
        if encoder is not None and encoder.model_id != collection.model_id:
            raise ModelMismatchError(collection.path, collection.model_id, encoder.model_id)
        self.collection = collection
        self.encoder = encoder
        self._caption_owners: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}  # kind -> (size, ids, clips)
        self._record_cache = LruCache(RECORD_CACHE_SIZE)
        self._speaker_id_table: tuple[int, np.ndarray] | None = None  # (speaker index size, sorted clip ids)
        self.columns: dict[str, Column] = filterable_columns(collection.con.cursor())
        self._attributes: Any = None  # searchengine.understanding.AttributeTable, read on first use

    @classmethod
    def open(cls, path: str | Path, model: str | None = None, device: str = "auto", snapshot: bool = False) -> Searcher:
        """Open a collection read-only with the model it was built with. `snapshot=True` copies one
        committed generation into memory and lets go of the DuckDB file (`Collection.open_snapshot`),
        so an indexer can keep writing beside a server."""
        collection = Collection.open_snapshot(path) if snapshot else Collection.open(path, read_only=True)
        return cls(collection, resolve_encoder(collection, model, device))

    def close(self) -> None:
        self.collection.close()

    def cursor(self) -> Any:
        """A DuckDB cursor of its own (one per request / thread)."""
        return self.collection.con.cursor()

    def warm_up(self) -> None:
        """Make the first query as fast as the next: the text path is built on its first use (the ONNX
        graph exported or loaded and compiled), which a server does at start rather than on a user's
        query (`Encoder.warm_up`)."""
        if self.encoder is not None:
            self.encoder.warm_up()

    # ------------------------------------------------------------------------------ embeddings
    def embed_text(self, query: str) -> np.ndarray:
        query = (query or "").strip()
        if not query:
            raise SearchError("the query is empty: describe the voice you are looking for")
        return self.encoder.encode_text([query])[0]

    def embed_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """A 16 kHz mono waveform -> one query vector: the mean of its <= 30 s segments, re-normalised,
        the same way a long file in the collection is represented by its segments."""
        from searchengine.audio import SAMPLE_RATE, segment

        pieces = [s.waveform for s in segment(np.asarray(waveform, np.float32), SAMPLE_RATE)]
        vectors = self.encoder.encode_speech(pieces, SAMPLE_RATE)
        return _unit(vectors.mean(axis=0))

    def clip_vectors(self, ids: Sequence[int], con: Any = None) -> np.ndarray:
        """Stored speech vectors of clips (raises ClipNotFoundError for ids not in the collection)."""
        ids = [int(i) for i in ids]
        self.require_clips(ids, con)
        return self.collection.vectors("speech", ids)

    def require_clips(self, ids: Sequence[int], con: Any = None) -> None:
        con = con or self.cursor()
        present = {r[0] for r in con.execute("SELECT id FROM clips WHERE list_contains(?, id)", [list(ids)]).fetchall()}
        missing = [i for i in ids if i not in present]
        if missing:
            raise ClipNotFoundError(missing)

    # ------------------------------------------------------------------------------ queries
    def search_text(self, query: str, options: SearchOptions = SearchOptions(), con: Any = None) -> SearchPage:
        """Clips that sound like `query` describes (and, with caption indexes, whose captions say so).
        With `options.understand`, the properties it names that were measured at indexing join the
        ranking as soft constraints; the page says what was understood and what nothing ranks."""
        con = con or self.cursor()
        understood = self.understand(query, options.drop, con)
        rerank = understood.reranker if options.understand else None
        page = self.search_vector(self.embed_text(query), options, con=con, modality="text", rerank=rerank)
        if options.understand:
            page.understood, page.uncovered = understood.understood_dicts(), understood.uncovered_dicts()
        page.notices = self.notices(understood)
        page.understand = bool(options.understand)
        return page

    def understand(self, query: str, drop: Sequence[str] = (), con: Any = None) -> Any:
        """What a description asks of the measured attributes (`searchengine.understanding.understand`)."""
        from searchengine.understanding import AttributeTable, understand

        if self._attributes is None:
            self._attributes = AttributeTable.load(con or self.cursor(), self.columns)
        return understand(query, self._attributes, drop)

    def notices(self, understood: Any) -> list[dict[str, Any]]:
        """What the query asks that neither this model nor a measured attribute ranks (`searchengine.capabilities`)."""
        from searchengine.capabilities import capabilities_for, notices

        caps = capabilities_for(self.collection.model_id, self.encoder)
        return notices(understood.uncovered, caps, self.collection.model_id.split("@")[0], self.columns)

    def search_clips(self, clip_ids: Sequence[int], options: SearchOptions = SearchOptions(), con: Any = None) -> SearchPage:
        """Clips that sound like the given clips (their mean vector), the query clips left out; with a
        voice weight above 0, also like their voice (their mean speaker vector, `searchengine.voice`)."""
        if not clip_ids:
            raise SearchError("give at least one clip id")
        con = con or self.cursor()
        vectors = self.clip_vectors(clip_ids, con)
        speaker = None
        if _voice_share(options) > 0:
            speaker = stored_speaker_query(self.collection, clip_ids, self._speaker_ids())
        return self.search_vector(_unit(vectors.mean(axis=0)), options, con=con, exclude=clip_ids, modality="speech",
                                  speaker=speaker)

    def search_audio(
        self, waveform: np.ndarray, options: SearchOptions = SearchOptions(), content_hash: str | None = None,
        con: Any = None,
    ) -> SearchPage:
        """Clips that sound like an uploaded recording (its style, and its voice by the voice weight).
        If the upload is a file of the collection (same content hash), its own clips are left out, as for
        a query by id."""
        con = con or self.cursor()
        exclude: list[int] = []
        if content_hash:
            exclude = [r[0] for r in con.execute("SELECT id FROM clips WHERE content_hash = ?", [content_hash]).fetchall()]
        speaker = None
        if _voice_share(options) > 0 and self.collection.index("speaker").ntotal:
            speaker = speaker_query(waveform)
        return self.search_vector(self.embed_waveform(waveform), options, con=con, exclude=exclude, modality="speech",
                                  speaker=speaker)

    def search_vector(
        self,
        vector: np.ndarray,
        options: SearchOptions = SearchOptions(),
        con: Any = None,
        exclude: Sequence[int] = (),
        modality: str = "text",
        rerank: Any = None,
        speaker: np.ndarray | None = None,
    ) -> SearchPage:
        """The ranked page for a query vector. Speech queries only search the speech index (caption
        indexes hold text vectors, a speech->text match says nothing about sounding alike). `rerank`
        (a `searchengine.understanding.Reranker`) adds the clips it favours to the candidates and
        fuses its soft constraints with the model's scores. A speech query with a `speaker` vector is
        ranked on the speech and speaker indexes together (`searchengine.voice`), by `voice_weight`."""
        started = time.perf_counter()
        options = options.validated()
        con = con or self.cursor()
        indexes = [i for i in options.indexes if modality == "text" or i == "speech"] or ["speech"]
        indexes = [i for i in indexes if self.collection.index(i).ntotal > 0] or ["speech"]
        compiled = self.compile(options.filter)
        excluded = sorted({int(i) for i in exclude})
        allowed = self._allowed_clips(compiled, con)
        candidates = self.collection.index("speech").ntotal if allowed is None else len(allowed)
        need = options.offset + options.top_k + TIE_MARGIN + len(excluded)
        depth = need if len(indexes) == 1 and rerank is None else max(need, FUSION_DEPTH)
        weights = {**DEFAULT_WEIGHTS, **(options.weights or {})}
        q = _unit(np.asarray(vector, np.float32))

        voice = _voice_share(options) if modality == "speech" else None
        if voice and (speaker is None or not self.collection.index("speaker").ntotal):
            voice = 0.0  # no voice to compare: the query or the collection has no speaker vector
        if voice:  # an example query: style (speech index) and timbre (speaker index) together
            fused, lists, strategy = voice_ranking(
                self.collection, q, _unit(speaker), voice, max(need, FUSION_DEPTH), allowed, set(excluded),
                options.strategy, self._speaker_ids())
            indexes, weights = list(lists), voice_weights(voice)
        else:
            fused, lists, strategy = self._ranked(indexes, q, depth, allowed, excluded, options, weights, rerank, con)
        if rerank is not None:
            fused = rerank.fuse(fused)

        order = sorted(fused, key=lambda cid: (-fused[cid], cid))
        page_ids = order[options.offset : options.offset + options.top_k]
        hits = self._hits(page_ids, fused, lists, weights, options, con)
        return SearchPage(
            hits=hits,
            top_k=options.top_k,
            offset=options.offset,
            candidates=max(0, candidates - len(excluded)),
            indexes=list(indexes),
            fusion=("voice" if voice else options.fusion) if len(indexes) > 1 else None,
            strategy=strategy,
            took_ms=round((time.perf_counter() - started) * 1000, 3),
            excluded=excluded,
            voice_weight=None if voice is None else float(voice),
        )

    def _ranked(self, indexes: list[str], q: np.ndarray, depth: int, allowed: np.ndarray | None,
                excluded: list[int], options: SearchOptions, weights: Mapping[str, float], rerank: Any, con: Any,
                ) -> tuple[dict[int, float], dict[str, dict[int, tuple[float, int | None]]], str]:
        """Fused scores over the speech and caption indexes, the per-index lists, and the filter strategy."""
        lists: dict[str, dict[int, tuple[float, int | None]]] = {}
        strategy = "none"
        for kind in indexes:
            found, strategy_used = self._clips_from_index(kind, q, depth, allowed, set(excluded), options.strategy, con)
            lists[kind] = found
            if allowed is not None:
                strategy = strategy_used
        if rerank is not None:  # clips the measured attributes favour join the candidates, scored exactly
            extra = [c for c in rerank.candidates(depth, allowed, set(excluded)) if not any(c in f for f in lists.values())]
            if extra:
                lists = self._complete_scores(q, lists, con, extra)
        if len(indexes) == 1:
            (kind,) = indexes
            return {cid: s for cid, (s, _) in lists[kind].items()}, lists, strategy
        if options.fusion == "weighted":  # a sum needs every candidate's score in every index
            lists = self._complete_scores(q, lists, con)
        return FUSIONS[options.fusion](lists, weights), lists, strategy

    # ------------------------------------------------------------------------------ filters
    def compile(self, spec: Any) -> CompiledFilter | None:
        """Validate and compile a filter against this collection's columns (FilterError if invalid)."""
        return compile_filter(spec, self.columns)

    def _allowed_clips(self, compiled: CompiledFilter | None, con: Any) -> np.ndarray | None:
        if compiled is None:
            return None
        rows = con.execute(f"SELECT id FROM clips WHERE {compiled.sql} ORDER BY id", compiled.params).fetchnumpy()
        return np.asarray(rows["id"], dtype=np.int64)

    def filter_ids(self, spec: Any, con: Any = None) -> np.ndarray | None:
        """Ids of the clips a filter keeps (None: no filter)."""
        return self._allowed_clips(self.compile(spec), con or self.cursor())

    # ------------------------------------------------------------------------------ one index
    def _clips_from_index(
        self,
        kind: str,
        q: np.ndarray,
        n: int,
        allowed_clips: np.ndarray | None,
        excluded: set[int],
        strategy: str,
        con: Any,
    ) -> tuple[dict[int, tuple[float, int | None]], str]:
        """Best `n` clips of one index: clip id -> (cosine, caption id or None), plus the strategy used."""
        index = self.collection.index(kind)
        if kind == "speech":
            allowed = allowed_clips
            if allowed is not None and excluded:
                allowed = allowed[~np.isin(allowed, np.fromiter(excluded, np.int64))]
            scores, ids, used = search_ids(index, q, n, allowed, excluded, strategy)
            return {int(i): (float(s), None) for s, i in zip(scores, ids, strict=False)}, used

        # Caption indexes answer with caption ids: several captions per clip, so fetch more, and map.
        per_clip = max(1.0, index.ntotal / max(1, self.collection.index("speech").ntotal))
        allowed_caps = None
        if allowed_clips is not None:
            allowed_caps = np.asarray(
                con.execute(
                    "SELECT id FROM captions WHERE kind = ? AND list_contains(?, clip_id) ORDER BY id",
                    [kind, allowed_clips.tolist()],
                ).fetchnumpy()["id"],
                np.int64,
            )
        owners = self._caption_owner_table(kind, con)
        return search_groups(index, q, n, lambda cap_ids: _owners_of(cap_ids, *owners), allowed_caps,
                             excluded, strategy, per_group=per_clip)

    def _speaker_ids(self) -> np.ndarray:
        """Sorted ids of the clips that have a speaker vector, read once per index size."""
        size = self.collection.index("speaker").ntotal
        if self._speaker_id_table is None or self._speaker_id_table[0] != size:
            ids = np.sort(self.collection.speaker_ids()) if size else np.zeros(0, np.int64)
            self._speaker_id_table = (size, ids)
        return self._speaker_id_table[1]

    def _caption_owner_table(self, kind: str, con: Any) -> tuple[np.ndarray, np.ndarray]:
        """Caption ids of one caption index (sorted) and the clip each belongs to, read once per index
        size rather than once per query: a query maps hundreds of caption hits to clips, and a DuckDB
        round trip per query cost more than the FAISS search. 16 bytes a caption (64 MB for 4M)."""
        size = self.collection.index(kind).ntotal
        cached = self._caption_owners.get(kind)
        if cached is None or cached[0] != size:
            rows = con.execute("SELECT id, clip_id FROM captions WHERE kind = ? ORDER BY id", [kind]).fetchnumpy()
            cached = (size, np.asarray(rows["id"], np.int64), np.asarray(rows["clip_id"], np.int64))
            self._caption_owners[kind] = cached
        return cached[1], cached[2]

    def _complete_scores(
        self, q: np.ndarray, lists: dict[str, dict[int, tuple[float, int | None]]], con: Any,
        ids: Sequence[int] | None = None,
    ) -> dict[str, dict[int, tuple[float, int | None]]]:
        """For a weighted sum every candidate needs its score in every index, not only in the lists that
        happened to return it: exact cosines from the stored vectors (best caption per clip). `ids`
        scores those clips in every list instead (candidates added from elsewhere)."""
        union = sorted(ids) if ids is not None else sorted({cid for found in lists.values() for cid in found})
        out: dict[str, dict[int, tuple[float, int | None]]] = {}
        for kind, found in lists.items():
            full = dict(found)
            missing = [c for c in union if c not in found]
            if missing and kind == "speech":
                vecs = self.collection.vectors("speech", missing)
                for cid, s in zip(missing, vecs @ q, strict=False):
                    full[cid] = (float(s), None)
            elif missing:
                rows = con.execute(
                    "SELECT id, clip_id FROM captions WHERE kind = ? AND list_contains(?, clip_id)", [kind, missing]
                ).fetchall()
                if rows:
                    vecs = self.collection.vectors(kind, [r[0] for r in rows])
                    for (cap, cid), s in zip(rows, vecs @ q, strict=False):
                        if cid not in full or s > full[cid][0]:
                            full[cid] = (float(s), int(cap))
            out[kind] = full
        return out

    # ------------------------------------------------------------------------------ records
    def _hits(
        self,
        page_ids: list[int],
        fused: dict[int, float],
        lists: dict[str, dict[int, tuple[float, int | None]]],
        weights: Mapping[str, float],
        options: SearchOptions,
        con: Any,
    ) -> list[Hit]:
        texts: dict[int, tuple[str, str]] = {}  # caption id -> (kind, text), of the page's clips
        records = self._clip_records(page_ids, con, texts)
        vouched = contributions(lists)
        hits: list[Hit] = []
        for n, cid in enumerate(page_ids):
            scores = {k: round(lists[k][cid][0], 6) for k in lists if cid in lists[k]}
            matched = max(scores, key=lambda k: (weights.get(k, 1.0) * vouched[k][cid], -RANKED_INDEXES.index(k)))
            cap = lists[matched][cid][1]
            caption = None
            if cap is None:  # speech matched best; still say which caption agreed most, if any did
                cap_kinds = [k for k in lists if k != "speech" and cid in lists[k]]
                if cap_kinds:
                    cap = lists[max(cap_kinds, key=lambda k: lists[k][cid][0])][cid][1]
            if cap is not None and cap in texts:
                caption = {"id": cap, "kind": texts[cap][0], "text": texts[cap][1]}
            record = records.get(cid, {})
            hits.append(
                Hit(
                    id=cid,
                    rank=options.offset + n + 1,
                    score=round(float(fused[cid]), 6),
                    matched=matched,
                    scores=scores,
                    caption=caption,
                    clip=record.get("clip", {}),
                    captions=record.get("captions", {}),
                )
            )
        return hits

    def clips(self, ids: Sequence[int], con: Any = None) -> dict[int, dict[str, Any]]:
        """Metadata and captions of clips: id -> {"clip": {...}, "captions": {"global", "fine"}}."""
        return self._clip_records(ids, con)

    def _clip_records(self, ids: Sequence[int], con: Any = None,
                      caption_texts: dict[int, tuple[str, str]] | None = None) -> dict[int, dict[str, Any]]:
        """`clips`, also filling `caption_texts` (caption id -> (kind, text)) from the same read.

        Records are kept in a bounded LRU (`RECORD_CACHE_SIZE` clips): the collection a Searcher opens
        does not change under it, and reading 20 rows of some 40 columns was most of a text search's
        time on a small collection. Callers get copies, so editing a hit never edits the cache."""
        if not ids:
            return {}
        wanted = [int(i) for i in ids]
        found = self._record_cache.get_many(wanted)
        missing = [i for i in wanted if i not in found]
        if missing:
            read = self._read_clip_records(missing, con or self.cursor())
            self._record_cache.put_many(read)
            found.update(read)
        out: dict[int, dict[str, Any]] = {}
        for cid in wanted:
            if cid not in found:
                continue
            clip, captions = found[cid]
            fine = [text for _, kind, text in captions if kind != "global"]
            last_global = next((text for _, kind, text in reversed(captions) if kind == "global"), None)
            out[cid] = {"clip": {k: _copied(v) for k, v in clip.items()},
                        "captions": {"global": last_global, "fine": fine}}
            if caption_texts is not None:
                caption_texts.update((cap_id, (kind, text)) for cap_id, kind, text in captions)
        return out

    def _read_clip_records(self, ids: list[int], con: Any) -> dict[int, tuple[dict[str, Any], list[tuple[int, str, str]]]]:
        """clip id -> (its columns, its captions as (caption id, kind, text) in id order), from DuckDB."""
        from searchengine.store.schema import quote_ident

        names = [n for n in self.columns if n not in ("global_caption", "fine_captions")] + ["source_path"]
        names = list(dict.fromkeys(names))
        cols = ", ".join(quote_ident(n) for n in names)
        out: dict[int, tuple[dict[str, Any], list[tuple[int, str, str]]]] = {}
        for row in con.execute(f"SELECT {cols} FROM clips WHERE list_contains(?, id)", [ids]).fetchall():
            clip = {n: _jsonable(v) for n, v in zip(names, row, strict=False)}
            out[int(clip["id"])] = (clip, [])
        for cap_id, cid, kind, text in con.execute(
            "SELECT id, clip_id, kind, text FROM captions WHERE list_contains(?, clip_id) ORDER BY id", [list(out)]
        ).fetchall():
            out[int(cid)][1].append((int(cap_id), kind, text))
        return out

    def clip(self, clip_id: int, con: Any = None) -> dict[str, Any]:
        """One clip's metadata and captions (ClipNotFoundError if absent)."""
        found = self.clips([int(clip_id)], con)
        if int(clip_id) not in found:
            raise ClipNotFoundError([clip_id])
        return found[int(clip_id)]

    # ------------------------------------------------------------------------------ zero-shot, similarity
    def classify(self, vectors: np.ndarray, labels: Sequence[str], template: str) -> np.ndarray:
        """Zero-shot class probabilities [N, labels] for speech vectors."""
        check_template(template)
        if not labels:
            raise SearchError("give at least one label")
        return self.encoder.zero_shot(None, list(labels), template=template, speech_embeddings=np.atleast_2d(vectors))

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        """Style similarity in 0..1, (cos + 1) / 2 as the encoder defines it."""
        return float(np.clip((float(np.dot(_unit(a), _unit(b))) + 1.0) / 2.0, 0.0, 1.0))

    # ------------------------------------------------------------------------------ collection facts
    def facets(self, con: Any = None, max_values: int = 50) -> dict[str, dict[str, Any]]:
        """The facts clips can be narrowed by, one facet each, its declared and measured columns grouped
        under it, with value counts or ranges and their distribution (`searchengine.facets`). The web
        page builds its filter controls from this."""
        from searchengine.facets import collection_facets

        return collection_facets(con or self.cursor(), self.columns, max_values)

    def column_info(self) -> dict[str, dict[str, Any]]:
        """Every filterable column with its type and the operators a filter may use on it."""
        return {name: {"type": c.kind, "sql_type": c.sql_type, "operators": list(c.operators)}
                for name, c in self.columns.items()}

    def stats(self) -> dict[str, Any]:
        """Counts, index types and sizes, model and disk usage (`Collection.stats`)."""
        return self.collection.stats()

    def clip_count(self, con: Any = None) -> int:
        """How many clips the collection holds, read from DuckDB: a cheap check that it answers."""
        con = con or self.cursor()
        (n,) = con.execute("SELECT count(*) FROM clips").fetchone()
        return int(n)

    def audio_source(self, clip_id: int, con: Any = None) -> AudioSource | None:
        """The file and segment a clip's audio is read from (None when the id is not in the collection).
        The path is whatever the manifest said: callers that serve it check it against allowed roots."""
        con = con or self.cursor()
        row = con.execute('SELECT source_path, "start", "end" FROM clips WHERE id = ?', [int(clip_id)]).fetchone()
        return None if row is None else AudioSource(*row)

    def source_paths(self, con: Any = None) -> list[str]:
        """Every distinct source file path of the collection's clips (where its audio lives)."""
        con = con or self.cursor()
        return [p for (p,) in con.execute("SELECT DISTINCT source_path FROM clips").fetchall()]


# ------------------------------------------------------------------------------------------ helpers
def check_template(template: str) -> None:
    """A zero-shot prompt template must hold exactly one `{}` and no other braces: it goes through
    str.format, and `{0.__class__}`-style fields must never reach it."""
    if not isinstance(template, str) or template.count("{}") != 1 or template.replace("{}", "").count("{") or template.replace("{}", "").count("}"):
        raise SearchError("template must contain exactly one '{}' (where the label goes) and no other braces")
    if len(template) > 500:
        raise SearchError("template is longer than 500 characters")


def _copied(value: Any) -> Any:
    """A JSON value with its lists and dicts copied (scalars are shared: they cannot be edited)."""
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value


def _owners_of(caption_ids: np.ndarray, sorted_ids: np.ndarray, clip_ids: np.ndarray) -> dict[int, int]:
    """caption id -> clip id for the given ids (ids not in the table are left out)."""
    caption_ids = np.asarray(caption_ids, np.int64)
    at = np.minimum(np.searchsorted(sorted_ids, caption_ids), max(len(sorted_ids) - 1, 0))
    if not len(sorted_ids):
        return {}
    known = sorted_ids[at] == caption_ids
    return dict(zip(caption_ids[known].tolist(), clip_ids[at[known]].tolist(), strict=True))


def _voice_share(options: SearchOptions) -> float:
    """The voice weight an example query asks for (the default when it does not say)."""
    return DEFAULT_VOICE_WEIGHT if options.voice_weight is None else float(options.voice_weight)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


__all__ = [
    "AudioSource",
    "CAPTION_KINDS",
    "ClipNotFoundError",
    "DEFAULT_FUSION",
    "DEFAULT_INDEXES",
    "DEFAULT_VOICE_WEIGHT",
    "FilterError",
    "Hit",
    "MAX_PAGE_TOP_K",
    "MAX_TOP_K",
    "SearchError",
    "SearchOptions",
    "SearchPage",
    "Searcher",
    "resolve_encoder",
    "rrf",
    "search_ids",
    "weighted_sum",
]
