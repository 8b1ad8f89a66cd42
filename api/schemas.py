"""Request and response bodies of the HTTP API, with the limits that keep one request cheap.

Limits are pydantic constraints (so they appear in the OpenAPI schema and a violation is a 422 naming
the field); the few that an operator may change (top_k, upload size, audio length) come from
`api.settings.Limits` and are checked in the routers against the running configuration.

Request bodies are strict (`Body`): what the document calls a string, integer or boolean is exactly
that (no "10" for 10, no 1 for true), and every constraint the server enforces is one the schema
states, so a request the document accepts is one the server accepts. The filter and the attribute
ranges depend on the collection's columns: the document refers to `Filter` and `Ranges`, which
`api.contract` builds from the collection and validates with.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from searchengine.search import DEFAULT_VOICE_WEIGHT, MAX_PAGE_TOP_K
from searchengine.understanding import DEFAULT_UNDERSTAND

Index = Literal["speech", "global", "fine"]
Fusion = Literal["rrf", "weighted"]
NOT_BLANK = "[^\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
"""A regular expression that finds a character Python's str.strip() keeps: text matching it is not
blank. Written with explicit code points so JSON Schema validators (ECMA-262), pydantic (Rust regex)
and Python agree on it, as they do not on `\\S`."""


def _integral(value: Any) -> Any:
    # JSON Schema counts 10.0 as an integer; strict pydantic would refuse it.
    return int(value) if type(value) is float and value.is_integer() else value


def integer(**bounds: int) -> Any:
    """An integer JSON value (10.0 included) within bounds. The bounds come before the validator, or
    pydantic writes them into the schema as "ge"/"le", which JSON Schema does not know."""
    return Annotated[int, Field(**bounds), BeforeValidator(_integral)]


Int = integer()
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Query = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=NOT_BLANK)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK)]
MAX_CLIP_ID = 2**53 - 1
"""The largest clip id the API takes: beyond it, JSON numbers (IEEE doubles in JavaScript and in most
JSON Schema validators) no longer tell neighbouring integers apart."""
ClipId = integer(ge=0, le=MAX_CLIP_ID)
Template = Annotated[str, StringConstraints(min_length=2, max_length=500, pattern="^[^{}]*\\{\\}[^{}]*$")]
FilterJson = Annotated[Any, WithJsonSchema({"x-contract": "Filter"})]
"""A filter as sent; `api.contract` validates it against the collection's columns, and the document
(`api.openapi`) puts a reference to the collection's `Filter` schema where this marker stands."""
RangesJson = Annotated[Any, WithJsonSchema({"x-contract": "Ranges"})]


def limit(name: str) -> dict[str, str]:
    """Marks a bound the operator may lower (`api.settings.Limits`): the document shows the running value."""
    return {"x-limit": name}


class Body(BaseModel):
    """A request body: unknown keys and loosely typed values are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SearchParams(Body):
    """Paging, filtering and fusion options shared by every search."""

    top_k: Int = Field(10, ge=1, le=MAX_PAGE_TOP_K, json_schema_extra=limit("max_top_k"),
                       description="Results per page (the server may set a lower maximum).")
    offset: Int = Field(0, ge=0, le=100_000, description="Results to skip: page n starts at (n - 1) * top_k.")
    filter: FilterJson | None = Field(None, description="Metadata conditions; see GET /collection for the fields.")


class TextSearchRequest(SearchParams):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"query": "a breathy young woman whispering"},
        {"query": "calm older man, clean studio recording", "top_k": 20,
         "filter": {"field": "duration", "op": ">", "value": 3}}]})
    query: Query = Field(..., description="A description of the voice, e.g. 'a breathy young woman whispering'.")
    indexes: list[Index] | None = Field(None, min_length=1, max_length=3, description="Default: speech + captions.")
    fusion: Fusion | None = Field(None, description="How index rankings are combined (default: rrf).")
    understand: bool = Field(
        DEFAULT_UNDERSTAND, description="Read the words that name measured properties (gender, pitch, pace, loudness, "
        "noise, distance, telephone, whisper, quality) as soft constraints fused with the model's score; false gives "
        "the model's ranking alone.")
    drop: list[Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NOT_BLANK)]] = Field(
        default_factory=list, max_length=32,
        description="Understood constraints to leave out, by key (e.g. 'gender:male'), as removing a chip does.")


class VoiceParams(SearchParams):
    """Options of a search by example: how much the voice counts beside the style."""

    voice_weight: FiniteFloat | None = Field(
        None, ge=0.0, le=1.0, description="0 ranks by style alone (the speech index), 1 by voice alone (the speaker "
        f"index), values between fuse both; default {DEFAULT_VOICE_WEIGHT}.")


class ClipSearchRequest(VoiceParams):
    clip_ids: list[ClipId] = Field(..., min_length=1, max_length=100, description="Clips to sound like (mean vector).")


class CaptionOut(BaseModel):
    id: int
    kind: str
    text: str


class HitOut(BaseModel):
    id: int
    rank: int
    score: float
    matched: str = Field(..., description="The index whose evidence counted most: speech, global, fine or speaker.")
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
    who_can: str | None = Field(None, description="The models that can rank it, as far as is known.")
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
    voice_weight: float | None = Field(
        None, description="Searches by example: the speaker index's share in the ranking (0 when the query or the "
        "collection has no speaker vector); null for text searches.")
    understand: bool | None = Field(None, description="Whether the description was understood (text searches); null otherwise.")


class ClipOut(BaseModel):
    id: int
    clip: dict[str, Any]
    captions: dict[str, Any]
    audio_url: str


class ClassifyRequest(Body):
    """Clips of the collection to label, by id."""

    clip_ids: list[ClipId] = Field(..., min_length=1, max_length=100)
    labels: list[Label] = Field(..., min_length=1, max_length=100, description="The classes, in free text.")
    template: Template = Field("A speaker in a {} tone.",
                               description="The prompt each label is put into: one '{}' and no other braces.")


class ClassifyResult(BaseModel):
    clip_id: int | None
    probabilities: dict[str, float]
    label: str


class ClassifyResponse(BaseModel):
    results: list[ClassifyResult]
    template: str


class SimilarityRequest(Body):
    """Two clips of the collection, by id."""

    a: ClipId
    b: ClipId


class SimilarityResponse(BaseModel):
    similarity: float = Field(..., description="Style similarity in 0..1: (cosine + 1) / 2 of the speech vectors.")
    cosine: float


ExportFormat = Literal["jsonl", "csv", "nemo", "lhotse", "hf", "ljspeech"]


class ExportOptions(Body):
    """What both kinds of export share: the file format, and the sample rate of formats that carry audio."""

    format: ExportFormat = Field(
        "jsonl", description="jsonl or csv: manifest lines; nemo: NeMo manifest lines (audio_filepath, duration, "
        "offset, text); lhotse: lhotse cuts (JSON lines); hf: a parquet file with an Audio column (each clip cut to "
        "its segment, FLAC); ljspeech: a zip of wavs/ and metadata.csv (id|text|normalized text).")
    sample_rate: integer(ge=8000, le=192_000) | None = Field(
        None, description="For hf and ljspeech, which carry the clips' audio: resample to this rate (default: 22050 "
        "for ljspeech, each file's own for hf). The line formats point at the files and ignore it.")


class ExportQuery(ExportOptions):
    """The best `n` clips of a text search, under the curation constraints."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"query": "calm older man, clean studio recording", "n": 200, "max_per_speaker": 5, "format": "csv"}]})

    query: Query = Field(..., description="A description of the voices to collect.")
    n: Int = Field(100, ge=1, le=10_000, json_schema_extra=limit("max_export"), description="How many clips to export.")
    filter: FilterJson | None = Field(None, description="Metadata conditions, as in /search/text.")
    indexes: list[Index] | None = Field(None, min_length=1, max_length=3)
    fusion: Fusion | None = None
    min_quality: FiniteFloat | None = Field(
        None, ge=1.0, le=5.0, json_schema_extra={"x-requires-column": "m_dnsmos_ovrl"},
        description="Minimum DNSMOS overall quality (1-5); offered when the collection has measured attributes.")
    ranges: RangesJson | None = Field(None, description="Attribute ranges, e.g. {\"m_snr_db\": {\"min\": 15}}.")
    max_per_speaker: integer(ge=1, le=10_000) | None = Field(None, description="At most K clips of one speaker.")
    diverse_speakers: bool = Field(False, description="Every speaker's best clip before anyone's second.")
    dedup_threshold: FiniteFloat | None = Field(
        None, ge=-1.0, le=1.0, description="Drop clips whose speech-vector cosine with a chosen clip is above this.")


class PickedClip(Body):
    """A clip of a selection with the score and rank to write for it (as a result list showed them)."""

    id: ClipId
    score: FiniteFloat
    rank: Int = Field(..., ge=1, le=1_000_000)


class ExportSelection(ExportOptions):
    """Clips picked by hand from any result list, exported as they are, in the order given."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ids": [3, 7, 12]}, {"ids": [{"id": 3, "score": 0.81, "rank": 1}, {"id": 7, "score": 0.78, "rank": 2}]}]})

    ids: list[ClipId | PickedClip] = Field(
        ..., min_length=1, max_length=10_000,
        description="The clips, in order: a bare id is ranked by its position (no score); {id, score, rank} writes "
                    "the score and rank a result list showed.")


ExportRequest = ExportQuery | ExportSelection


class ErrorOut(BaseModel):
    """Every error: 4xx for a request to change, with a message that says what to change."""

    error: str = Field(..., description="A short stable code, e.g. bad_filter, not_found, too_large, unauthorized.")
    message: str = Field(..., description="What was wrong, for a person.")
    status: int = Field(..., description="The HTTP status code, repeated.")
    detail: Any = Field(None, description="Structured detail where there is some: validation errors, missing ids.")


class HealthOut(BaseModel):
    status: Literal["ok"]
    clips: int
    model_id: str


class CollectionOut(BaseModel):
    """What GET /collection reports; further statistics may be added."""

    model_config = ConfigDict(extra="allow")
    model_id: str
    dim: int
    metric: str
    counts: dict[str, Any]
    indexes: dict[str, Any]
    defaults: dict[str, Any] = Field(..., description="Indexes and fusion a text search uses when it does not say.")
    limits: dict[str, Any] = Field(..., description="The limits this server enforces.")
    facets: dict[str, dict[str, Any]] = Field(
        ..., description="Per fact (gender, pitch, pace, ...), in display order: its label and sources, the columns "
        "holding it grouped by origin (declared in the manifest, measured from the audio), each with its values "
        "(counts) or its range and distribution (quantiles, histogram). Ids, paths, licences, free text and "
        "constant columns are not facets.")
    columns: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Every filterable column: its type and the operators a filter may use.")


# ------------------------------------------------------------------------------------ multipart forms
AudioFile = Annotated[Any, WithJsonSchema({"type": "string", "format": "binary",
                                           "description": "A recording: any format ffmpeg decodes (wav, flac, mp3, "
                                                          "ogg, m4a, webm, ...)."})]


class AudioSearchForm(VoiceParams):
    """multipart/form-data for POST /search/audio: a recording and the usual options (the filter as JSON)."""

    file: AudioFile
    # A form field holds text and has no null: the weight is a number, or the field is left out.
    voice_weight: FiniteFloat = Field(
        DEFAULT_VOICE_WEIGHT, ge=0.0, le=1.0, description="0 ranks by style alone (the speech index), 1 by voice "
        "alone (the speaker index), values between fuse both.")


class ClassifyForm(Body):
    """multipart/form-data for POST /classify: a recording and its labels (one form field per label)."""

    file: AudioFile
    labels: list[Label] = Field(..., min_length=1, max_length=100, description="The classes, one field each.")
    template: Template = Field("A speaker in a {} tone.",
                               description="The prompt each label is put into: one '{}' and no other braces.")


class SimilarityForm(Body):
    """multipart/form-data for POST /similarity: each side a recording (`a`, `b`) or the id of a clip
    of the collection (`a_id`, `b_id`), exactly one of the two."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"oneOf": [{"required": ["a"]}, {"required": ["a_id"]}]},
        {"oneOf": [{"required": ["b"]}, {"required": ["b_id"]}]}]})
    a: AudioFile = None
    a_id: ClipId = None
    b: AudioFile = None
    b_id: ClipId = None

    @model_validator(mode="after")
    def _one_each(self) -> SimilarityForm:
        for side in ("a", "b"):
            if (side in self.model_fields_set) == (f"{side}_id" in self.model_fields_set):
                raise ValueError(f"give either a recording '{side}' or a clip id '{side}_id', not both or neither")
        return self
