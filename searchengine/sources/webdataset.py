"""webdataset tar shards: samples of files sharing a key, `<key>.<field>`, one audio member each.

The key is a member's path up to the first dot of its file name, the field the rest (`a/x.flac` is
field `flac` of sample `a/x`), as webdataset splits them. A sample's audio is its first member with
an audio extension; a `.json` member gives its manifest fields (`id`, `speaker`, `text`,
`global_caption`, `attributes`, ...), a `.txt` / `.text` / `.transcript` member its transcript when
the json has none. Other members are passed over. Samples without audio are reported, not indexed.

A source is one shard, a `{000..009}` / `{a,b}` pattern of shards, or a folder of shards (and no
audio files). Members are only located here; `extract` writes the audio out. Samples are keyed by
their json `id`, else `<shard>#<key>`.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

from searchengine.manifest import (
    AUDIO_EXTENSIONS,
    TRANSCRIPT_COLUMNS,
    Embedded,
    ManifestError,
    Source,
    table_source,
)
from searchengine.sources.records import table_from_records

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
TEXT_FIELDS = ("txt", "text", "transcript", "transcript.txt")
MAX_TEXT_BYTES = 1 << 20
"""A json or text member larger than this is not a sample's metadata; reading it would only cost memory."""
_KEY_FIELD = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")
_BRACES = re.compile(r"\{([^{}]*)\}")


def is_shard(path: Path) -> bool:
    return path.name.lower().endswith(SHARD_SUFFIXES)


def shards_in(folder: Path) -> list[Path]:
    """The tar shards directly in `folder`, when it holds shards and no audio files (else: [])."""
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")]
    shards = [f for f in files if is_shard(f)]
    if not shards or any(f.suffix.lower() in AUDIO_EXTENSIONS for f in files):
        return []
    return shards


def is_pattern(text: str) -> bool:
    """True for a brace pattern of shard names (`shard-{000..009}.tar`, `{train,dev}.tar`)."""
    return any(".." in m or "," in m for m in _BRACES.findall(text))


def expand(pattern: str) -> list[Path]:
    """The shards a brace pattern names (numeric ranges keep their zero padding); each must exist."""
    names = _expand(pattern)
    missing = [n for n in names if not Path(n).is_file()]
    if missing:
        raise ManifestError(f"{pattern}: {len(missing)} of {len(names)} shards do not exist (first: {missing[0]})")
    return [Path(n) for n in names]


def _expand(pattern: str) -> list[str]:
    m = _BRACES.search(pattern)
    if m is None:
        return [pattern]
    head, body, tail = pattern[: m.start()], m.group(1), pattern[m.end():]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") else 0
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    return [out for option in options for out in _expand(head + option + tail)]


def read_shards(shards: list[Path], origin: str) -> Source:
    """Items of the samples of `shards`, in shard and member order."""
    rows: list[dict[str, Any]] = []
    embedded: list[Embedded | None] = []
    keys: list[str] = []
    skipped: list[tuple[str, str]] = []
    for shard in shards:
        shard = shard.resolve()
        for key, members in _samples(shard).items():
            audio = next((name for field, (name, _) in members.items() if _is_audio(field)), None)
            if audio is None:
                skipped.append((f"{shard}#{key}", f"no audio member (fields: {', '.join(members)})"))
                continue
            record = _record(shard, key, members)
            record["path"] = str(shard)
            rows.append(record)
            embedded.append(Embedded("tar", str(shard), audio, None, audio))
            keys.append(f"{shard}#{key}")
    if not rows and not skipped:
        raise ManifestError(f"{origin}: no samples in {len(shards)} shard(s)")
    table = table_from_records(rows)
    base = shards[0].resolve().parent if shards else Path(".").resolve()
    return table_source(table, Path(origin), base, embedded, keys, skipped)


def _is_audio(field: str) -> bool:
    return "." + field.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS


def _record(shard: Path, key: str, members: dict[str, tuple[str, bytes | None]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if "json" in members:
        name, data = members["json"]
        try:
            meta = json.loads(data or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{shard}: member {name} is not JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise ManifestError(f"{shard}: member {name} is not a JSON object")
        record.update({("dataset_path" if k == "path" else k): v for k, v in meta.items()})
    if not any(record.get(c) for c in TRANSCRIPT_COLUMNS):
        text = next((data for field, (_, data) in members.items() if field.lower() in TEXT_FIELDS), None)
        if text is not None:
            record["transcript"] = text.decode("utf-8", errors="replace").strip()
    return record


def _samples(shard: Path) -> dict[str, dict[str, tuple[str, bytes | None]]]:
    """key -> field -> (member name, its bytes for json/text members, else None), in member order."""
    samples: dict[str, dict[str, tuple[str, bytes | None]]] = {}
    try:
        with tarfile.open(shard, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                m = _KEY_FIELD.match(member.name)
                if m is None:
                    continue
                key, field = m.group(1), m.group(2)
                data = None
                if (field.lower() == "json" or field.lower() in TEXT_FIELDS) and member.size <= MAX_TEXT_BYTES:
                    f = tar.extractfile(member)
                    data = f.read() if f is not None else None
                samples.setdefault(key, {}).setdefault(field, (member.name, data))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ManifestError(f"{shard}: cannot read tar shard: {exc}") from exc
    return samples
