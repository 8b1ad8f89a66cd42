"""`clsp-search search | similar | export`: querying a collection from a terminal, and
writing what a query finds for a trainer (`searchengine.export`).

Filters use a small text syntax (see `searchengine.filters`), each `--filter` flag one expression,
all of them required to hold:

    clsp-search search data/c "a breathy young woman whispering" --filter "duration > 3" \
        --filter "gender = female or accent in (Scottish, Irish)" --filter "timbre contains breathy"

Heavy imports (torch, faiss, uvicorn) happen inside the commands, so `clsp-search --help` stays fast.
Expected failures (no such collection, bad filter, unknown clip, unreadable audio) end with one red
line and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

_err = Console(stderr=True)

CollectionArg = Annotated[Path, typer.Argument(help="Collection directory (made by `clsp-search index`).")]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option("--filter", "-f", help="Metadata condition, e.g. 'duration > 3', 'gender in (female, male)', "
                 "'timbre contains breathy', 'rate_factor between 0.8 and 1.2'; repeat for AND."),
]
TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Results to show (at most searchengine.search.MAX_TOP_K).")]
OffsetOpt = Annotated[int, typer.Option("--offset", min=0, help="Results to skip (paging).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name or checkpoint dir (default: the collection's).")]


def _fail(message: str) -> None:
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _open(collection: Path, model: str | None) -> Any:
    from searchengine.search import Searcher
    from searchengine.store import CollectionError

    try:
        return Searcher.open(collection, model=model)
    except CollectionError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a model that fails to load: say which
        _fail(f"cannot open {collection}: {exc}")


def _filter(filters: list[str] | None) -> Any:
    from searchengine.filters import FilterError, parse_expressions

    try:
        return parse_expressions(filters or [])
    except FilterError as exc:
        _fail(str(exc))


def _run(fn: Any, *args: Any) -> Any:
    """Call a search, turning the library's input errors into one-line messages."""
    from searchengine.audio import AudioError
    from searchengine.filters import FilterError
    from searchengine.search import ClipNotFoundError, SearchError

    try:
        return fn(*args)
    except (FilterError, SearchError, ClipNotFoundError, AudioError) as exc:
        _fail(str(exc))


def _print_page(page: Any, as_json: bool, title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(page.to_dict(), ensure_ascii=False, default=str) + "\n")
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("clip", justify="right")
    table.add_column("score", justify="right")
    table.add_column("via")
    table.add_column("dur", justify="right")
    table.add_column("file")
    table.add_column("caption", overflow="fold", ratio=1)
    for hit in page.hits:
        caption = (hit.caption or {}).get("text") or hit.captions.get("global") or ""
        clip = hit.clip
        table.add_row(
            str(hit.rank), str(hit.id), f"{hit.score:.4f}", hit.matched,
            f"{clip.get('duration') or 0:.1f}s", Path(str(clip.get("source_path", ""))).name, caption,
        )
    out = Console()
    out.print(table)
    how = f"{', '.join(page.indexes)}" + (f" fused by {page.fusion}" if page.fusion else "")
    if getattr(page, "voice_weight", None) is not None:
        how += f" (voice weight {page.voice_weight:g}: 0 style, 1 voice)"
    filt = f"; filter keeps {page.candidates} clips ({page.strategy})" if page.strategy != "none" else ""
    out.print(f"[dim]{len(page.hits)} results from {how}{filt}; {page.took_ms:.0f} ms[/dim]")
    for line in understanding_lines(page):
        out.print(line, highlight=False, soft_wrap=True)


def understanding_lines(page: Any) -> list[str]:
    """What the description was understood to ask, which words nothing measured covers, and what
    neither the model nor the attributes can rank (searchengine.understanding, searchengine.capabilities)."""
    lines = []
    applied = [u for u in page.understood if u["status"] == "applied"]
    others = [u for u in page.understood if u["status"] != "applied"]
    if applied:
        lines.append("Understood: " + "; ".join(f"{u['label']} ('{u['words']}', key {u['key']})" for u in applied)
                     + "  [--drop KEY leaves one out, --no-understand all]")
    for u in others:
        lines.append(f"Not applied: {u['label']} ('{u['words']}'): {u['status']}")
    if page.uncovered:
        lines.append("Left to the model (no measured attribute): " + ", ".join(
            f"'{u['words']}'" + (f" ({u['property']})" if u["property"] else "") for u in page.uncovered))
    for n in page.notices:
        lines.append(f"[yellow]Notice:[/yellow] {n['message']}" + (f" Can rank it: {n['who_can']}." if n.get("who_can") else ""))
    return lines


def search(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="A description of the voice, e.g. 'a calm older man, clean studio'.")],
    top_k: TopKOpt = 10,
    offset: OffsetOpt = 0,
    filter: FilterOpt = None,  # noqa: A002 - the user-facing option name
    indexes: Annotated[
        str, typer.Option("--indexes", help="Comma list of speech, global, fine (default: all, fused).")
    ] = "speech,global,fine",
    fusion: Annotated[
        str | None, typer.Option("--fusion", help="rrf or weighted (default: the library's measured best, weighted).")
    ] = None,
    as_json: JsonOpt = False,
    model: ModelOpt = None,
    understand: Annotated[bool | None, typer.Option(
        "--understand/--no-understand",
        help="Read words that name measured properties (gender, pitch, pace, loudness, noise, distance, telephone, "
             "whisper, quality) as soft constraints fused with the model's score (default: on, see the README, "
             "'What the search understands').")] = None,
    drop: Annotated[list[str] | None, typer.Option(
        "--drop", help="Leave out one understood constraint by its key, e.g. 'gender:male'; repeatable.")] = None,
) -> None:
    """Find clips that sound like QUERY describes."""
    from searchengine.search import DEFAULT_FUSION, SearchOptions
    from searchengine.understanding import DEFAULT_UNDERSTAND

    spec = _filter(filter)
    searcher = _open(collection, model)
    options = SearchOptions(top_k=top_k, offset=offset, filter=spec,
                            indexes=tuple(i.strip() for i in indexes.split(",") if i.strip()),
                            fusion=fusion or DEFAULT_FUSION,
                            understand=DEFAULT_UNDERSTAND if understand is None else understand,
                            drop=tuple(drop or ()))
    page = _run(searcher.search_text, query, options)
    _print_page(page, as_json, f"{query!r} in {collection}")


def similar(
    collection: CollectionArg,
    example: Annotated[list[str], typer.Argument(help="Audio file(s) or clip id(s) of the collection; several are averaged.")],
    top_k: TopKOpt = 10,
    offset: OffsetOpt = 0,
    filter: FilterOpt = None,  # noqa: A002
    as_json: JsonOpt = False,
    model: ModelOpt = None,
    voice_weight: Annotated[float | None, typer.Option(
        "--voice-weight", min=0.0, max=1.0,
        help="0 = style alone (speech index), 1 = voice alone (speaker index); default: the library's "
             "(searchengine.voice.DEFAULT_VOICE_WEIGHT).")] = None,
) -> None:
    """Find clips that sound like EXAMPLE (a file, or clip ids), leaving the example itself out: alike in
    style and in voice, weighed by --voice-weight."""
    from searchengine.search import SearchOptions

    spec = _filter(filter)
    options = SearchOptions(top_k=top_k, offset=offset, filter=spec, indexes=("speech",), voice_weight=voice_weight)
    ids = [e for e in example if e.isdigit() and not Path(e).exists()]
    files = [e for e in example if e not in ids]
    if ids and files:
        _fail("give either clip ids or audio files, not both")
    searcher = _open(collection, model)
    if ids:
        page = _run(searcher.search_clips, [int(i) for i in ids], options)
    else:
        if len(files) != 1:
            _fail("give one audio file (or several clip ids)")
        from searchengine.audio import decode, file_hash

        path = Path(files[0])
        if not path.is_file():
            _fail(f"{path}: no such file (and not a clip id)")
        audio = _run(decode, path)
        page = _run(searcher.search_audio, audio.waveform, options, file_hash(path))
    _print_page(page, as_json, f"sounds like {' '.join(example)}")


def export(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="A description of the voices to collect.")],
    n: Annotated[int, typer.Option("-n", "--n", min=1, max=1_000_000, help="How many clips.")] = 100,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write; a folder for ljspeech, and for hf "
                                         "unless the name ends in .parquet.")] = Path("export.jsonl"),
    filter: FilterOpt = None,  # noqa: A002
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv, nemo, lhotse, hf or ljspeech (default: from "
                                            "the file name: .csv is csv, .parquet hf, anything else jsonl).")] = None,
    sample_rate: Annotated[int | None, typer.Option(
        "--sample-rate", min=8000, max=192_000, help="For hf and ljspeech, which carry the clips' audio: resample to "
        "this rate (default: 22050 for ljspeech, each file's own for hf).")] = None,
    min_quality: Annotated[float | None, typer.Option(
        "--min-quality", min=1.0, max=5.0, help="Keep clips whose DNSMOS overall quality (1-5) is at least this.")] = None,
    ranges: Annotated[list[str] | None, typer.Option(
        "--range", help="Attribute range FIELD=LOW:HIGH (a side may be empty), e.g. 'm_snr_db=15:'; repeat for AND.")] = None,
    max_per_speaker: Annotated[int | None, typer.Option(
        "--max-per-speaker", min=1, help="At most K clips of one speaker (manifest speaker, else speaker cluster).")] = None,
    diverse_speakers: Annotated[bool, typer.Option(
        "--diverse-speakers", help="Take every speaker's best clip before anyone's second (round-robin).")] = False,
    dedup_threshold: Annotated[float | None, typer.Option(
        "--dedup-threshold", min=-1.0, max=1.0, help="Drop a clip whose speech-vector cosine with a chosen one is above T.")] = None,
    summary: Annotated[Path | None, typer.Option(
        "--summary", help="Write histograms of the chosen clips' attributes to this PNG (needs matplotlib).")] = None,
    model: ModelOpt = None,
) -> None:
    """Write the best N clips for QUERY that meet the constraints for a trainer (manifest lines, NeMo or lhotse
    manifests, a Hugging Face dataset, the LJSpeech layout), and summarise them."""
    from searchengine.curate import (
        Constraints,
        CurationError,
        curate,
        parse_range,
        summarize,
        write_summary_png,
    )
    from searchengine.export import ExportError, check_output, format_for, manifest_row, write_export

    try:
        fmt = format_for(output, fmt)
        check_output(output, fmt)
    except ExportError as exc:
        _fail(str(exc))
    spec = _filter(filter)
    try:
        constraints = Constraints(min_quality=min_quality, ranges=dict(parse_range(r) for r in ranges or []),
                                  max_per_speaker=max_per_speaker, diverse_speakers=diverse_speakers,
                                  dedup_threshold=dedup_threshold).validated()
    except CurationError as exc:
        _fail(str(exc))
    searcher = _open(collection, model)
    try:
        result = _run(curate, searcher, query, n, constraints, spec)
    except CurationError as exc:
        _fail(str(exc))
    rows = [manifest_row(h) for h in result.hits]
    try:
        untranscribed = write_export(rows, fmt, output, sample_rate)
    except ExportError as exc:
        _fail(str(exc))
    _print_summary(summarize(result))
    if summary is not None:
        try:
            write_summary_png(result, summary)
        except CurationError as exc:
            _err.print(f"[yellow]warning:[/yellow] {exc}; no summary image written", highlight=False)
        else:
            _err.print(f"Summary histograms in {summary}", highlight=False)
    if untranscribed and fmt in ("nemo", "lhotse", "hf", "ljspeech"):
        _err.print(f"[yellow]warning:[/yellow] {untranscribed} of {len(rows)} clips have no transcript; their text is "
                   "empty (index a source with a transcript or text column to fill it)", highlight=False)
    _err.print(f"Wrote {len(rows)} clips to {output} ({fmt})", highlight=False)


def _print_summary(info: dict[str, Any]) -> None:
    """The curation summary as a table on stderr, so stdout stays free for pipes."""
    from rich.table import Table

    table = Table(title=f"{info['selected']} of {info['requested']} clips chosen from {info['candidates']} "
                  f"candidates ({info['matching']} match the filters)", title_justify="left")
    table.add_column("what")
    table.add_column("counts", overflow="fold", ratio=1)
    top = list(info["per_speaker"].items())
    shown = ", ".join(f"{k}: {v}" for k, v in top[:12]) + (f", ... ({len(top) - 12} more)" if len(top) > 12 else "")
    table.add_row("speakers", f"{info['speakers']} ({shown})" if top else "0")
    table.add_row("gender", ", ".join(f"{k}: {v}" for k, v in info["genders"].items()))
    table.add_row("accent", ", ".join(f"{k}: {v}" for k, v in info["accents"].items()))
    if info["dropped"]:
        table.add_row("dropped", ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in info["dropped"].items()))
    for name, stats in info["attributes"].items():
        table.add_row(name, f"min {stats['min']}  median {stats['median']}  max {stats['max']}")
    _err.print(table)
