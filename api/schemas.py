"""Request and response bodies of the HTTP API, with the limits that keep one request cheap.

Limits are pydantic constraints (so they appear in the OpenAPI schema and a violation is a 422 naming
the field); the few that an operator may change (top_k, upload size, audio length) come from
`api.settings.Limits` and are checked in the routers against the running configuration.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from searchengine.search import MAX_PAGE_TOP_K
from searchengine.understanding import DEFAULT_UNDERSTAND

Index = Literal["speech", "global", "fine"]
Fusion = Literal["rrf", "weighted"]
Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ClipId = Annotated[int, Field(ge=0, le=2**62)]


class Condition(BaseModel):
    """One test on a metadata column: `{"field": "duration", "op": ">", "value": 3}`."""

    model_config = ConfigDict(extra="forbid")
    field: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    op: Literal["=", "==", "!=", "<", "<=", ">", ">=", "in", "between", "contains"]
    value: Any = None


class Group(BaseModel):
    """All (`and`) or any (`or`) of a list of conditions or groups."""

    model_config = ConfigDict(extra="forbid")
    and_: list[Condition | Group] | None = Field(default=None, alias="and", min_length=1, max_length=64)
    or_: list[Condition | Group] | None = Field(default=None, alias="or", min_length=1, max_length=64)


Filter = Condition | Group | list[Condition | Group]


def filter_tree(value: Filter | None) -> Any:
    """The plain dict/list tree `searchengine.filters` compiles (aliases restored, unset keys dropped)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [filter_tree(v) for v in value]
    return value.model_dump(by_alias=True, exclude_none=True) if isinstance(value, Group) else value.model_dump()


class SearchParams(BaseModel):
    """Paging, filtering and fusion options shared by every search."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(10, ge=1, le=MAX_PAGE_TOP_K, description="Results per page (the server may set a lower maximum).")
    offset: int = Field(0, ge=0, le=100_000, description="Results to skip: page n starts at (n - 1) * top_k.")
    filter: Filter | None = Field(None, description="Metadata conditions; see GET /collection for the fields.")


class TextSearchRequest(SearchParams):
    query: Query = Field(..., description="A description of the voice, e.g. 'a breathy young woman whispering'.")
    indexes: list[Index] | None = Field(None, min_length=1, max_length=3, description="Default: speech + captions.")
    fusion: Fusion | None = Field(None, description="How index rankings are combined (default: rrf).")
    understand: bool = Field(
        DEFAULT_UNDERSTAND, description="Read the words that name measured properties (gender, pitch, pace, loudness, "
        "noise, distance, telephone, whisper, quality) as soft constraints fused with the model's score; false gives "
        "the model's ranking alone.")
    drop: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=32,
        description="Understood constraints to leave out, by key (e.g. 'gender:male'), as removing a chip does.")


class ClipSearchRequest(SearchParams):
    clip_ids: list[ClipId] = Field(..., min_length=1, max_length=100, description="Clips to sound like (mean vector).")


class CaptionOut(BaseModel):
    id: int
    kind: str
    text: str


class HitOut(BaseModel):
    id: int
    rank: int
    score: float
    matched: str = Field(..., description="The index whose evidence counted most: speech, global or fine.")
    scores: dict[str, float]
    caption: CaptionOut | None
    clip: dict[str, Any]
    captions: dict[str, Any]
    audio_url: str


class UnderstoodOut(BaseModel):
    """A property the description names, read as a soft constraint over a measured column."""

    key: str = Field(..., description="Stable name of the constraint, e.g. 'pace:high'; send it in `drop` to leave it out.")
    property: str = Field(..., description="gender, pitch, pace, loudness, noise, distance, quality, expressiveness, channel or whisper.")
    target: str = Field(..., description="low, mid or high on a graded property; male or female; telephone or wideband; whisper or voiced.")
    very: bool
    words: str = Field(..., description="The words of the query it was read from.")
    label: str = Field(..., description="How to show it, e.g. 'pace: fast'.")
    column: str = Field(..., description="The measured column it is scored on.")
    status: str = Field(..., description="applied, dropped, or 'not measured in this collection'.")


class UncoveredOut(BaseModel):
    """Words of the description that no measured attribute covers: the model alone ranks them, if it can."""

    words: str
    property: str | None = Field(None, description="age, timbre, accent or emotion; null for a word no vocabulary knows.")


class NoticeOut(BaseModel):
    """Something the query asks that neither the model nor a measured attribute can rank."""

    property: str
    words: list[str]
    model_id: str
    level: str
    message: str
    who_can: str | None = Field(None, description="The model that can rank it, as far as is known.")
    filter_column: str | None = Field(None, description="A column of this collection holding the property, to filter on.")


class SearchResponse(BaseModel):
    hits: list[HitOut]
    top_k: int
    offset: int
    candidates: int
    indexes: list[str]
    fusion: str | None
    strategy: str
    took_ms: float
    excluded: list[int]
    model_id: str
    understood: list[UnderstoodOut] = Field(default_factory=list, description="What the description was understood to ask.")
    uncovered: list[UncoveredOut] = Field(default_factory=list, description="Its words no measured attribute covers.")
    notices: list[NoticeOut] = Field(default_factory=list, description="What neither the model nor the attributes can rank.")


class ClipOut(BaseModel):
    id: int
    clip: dict[str, Any]
    captions: dict[str, Any]
    audio_url: str


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clip_ids: list[ClipId] = Field(..., min_length=1, max_length=100)
    labels: list[Label] = Field(..., min_length=1, max_length=100)
    template: Annotated[str, StringConstraints(min_length=2, max_length=500)] = "A speaker in a {} tone."


class ClassifyResult(BaseModel):
    clip_id: int | None
    probabilities: dict[str, float]
    label: str


class ClassifyResponse(BaseModel):
    results: list[ClassifyResult]
    template: str


class SimilarityRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: ClipId
    b: ClipId


class SimilarityResponse(BaseModel):
    similarity: float = Field(..., description="Style similarity in 0..1: (cosine + 1) / 2 of the speech vectors.")
    cosine: float


class Range(BaseModel):
    """Bounds of one numeric attribute; either may be left out for an open side."""

    model_config = ConfigDict(extra="forbid")
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)


class ExportRequest(BaseModel):
    """Either a text `query` (its best `n` clips, under the curation constraints) or `ids`: clips
    picked by hand from any result list, exported as they are, in the order given."""

    model_config = ConfigDict(extra="forbid")
    query: Query | None = None
    ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, max_length=10_000, description="Clip ids to export as they are (a selection).")
    scores: list[float] | None = Field(None, max_length=10_000, description="Scores to write for `ids`, one each.")
    ranks: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, max_length=10_000, description="Ranks to write for `ids`, one each (default: their order).")
    n: int = Field(100, ge=1, le=10_000, description="How many clips to export.")
    filter: Filter | None = None
    format: Literal["jsonl", "csv"] = "jsonl"
    indexes: list[Index] | None = Field(None, min_length=1, max_length=3)
    fusion: Fusion | None = None
    min_quality: float | None = Field(None, ge=1.0, le=5.0, description="Minimum DNSMOS overall quality (1-5).")
    ranges: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Range] | None = Field(
        None, max_length=32, description="Attribute ranges, e.g. {\"m_snr_db\": {\"min\": 15}}.")
    max_per_speaker: int | None = Field(None, ge=1, le=10_000, description="At most K clips of one speaker.")
    diverse_speakers: bool = Field(False, description="Every speaker's best clip before anyone's second.")
    dedup_threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="Drop clips whose speech-vector cosine with a chosen clip is above this.")

    @model_validator(mode="after")
    def _one_source(self) -> ExportRequest:
        if (self.query is None) == (self.ids is None):
            raise ValueError("give either a text query or ids of the clips to export, not both")
        if self.ids is not None:
            searchy = (self.filter, self.indexes, self.fusion, self.min_quality, self.ranges, self.max_per_speaker,
                       self.dedup_threshold)
            if any(v is not None for v in searchy) or self.diverse_speakers:
                raise ValueError("search options and curation constraints apply to a query, not to picked ids")
            if any(v is not None and len(v) != len(self.ids) for v in (self.scores, self.ranks)):
                raise ValueError("scores and ranks must have one value per id")
        elif self.scores is not None or self.ranks is not None:
            raise ValueError("scores and ranks go with ids")
        return self


class ErrorOut(BaseModel):
    error: str = Field(..., description="A short stable code, e.g. bad_filter, not_found, too_large.")
    message: str
    status: int
    detail: Any = None
