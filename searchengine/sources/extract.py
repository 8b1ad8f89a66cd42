"""Audio stored inside a source (bytes in a dataset column, members of a tar shard) written out as files.

The decoders, the resume check and the server all work on files, so embedded audio becomes one: each
item's bytes go to `<audio_dir>/<h[:2]>/<h><suffix>`, `h` the BLAKE2b-128 of the bytes (the same
digest `audio.file_hash` gives the file, so the stored content hash is the file's name). Files are
named by content, hence immutable: a re-run finds them in place and writes nothing, the file's size
and mtime stay put for the resume check, and a changed row gets a new file while the old one stays
valid for the clips still pointing at it. Each is written new-then-fsync-then-rename, so a crash
leaves a whole file or none.

Each container is read once, in order (a tar is streamed; parquet and arrow are read a batch at a time),
so memory holds one item's bytes at a time, not the corpus.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from searchengine.manifest import AUDIO_EXTENSIONS, Embedded, ManifestError, Source, SourceItem

_MAGIC = (
    (b"RIFF", 0, ".wav"), (b"fLaC", 0, ".flac"), (b"OggS", 0, ".ogg"), (b"ID3", 0, ".mp3"),
    (b"FORM", 0, ".aiff"), (b"\x1aE\xdf\xa3", 0, ".webm"), (b"ftyp", 4, ".m4a"), (b"#!AMR", 0, ".amr"),
)


def needs_extraction(source: Source) -> bool:
    return any(item.embedded is not None for item in source.items)


def extract_embedded(source: Source, audio_dir: str | os.PathLike, progress: bool = False) -> Source:
    """`source` with every embedded item's audio written under `audio_dir` and its `path` pointing there."""
    todo = [(i, item) for i, item in enumerate(source.items) if item.embedded is not None]
    if not todo:
        return source
    from searchengine.progress import progress_bar

    root = Path(os.path.abspath(audio_dir))
    items = list(source.items)
    groups: dict[tuple[str, str, str | None], list[tuple[int, SourceItem]]] = defaultdict(list)
    for i, item in todo:
        e = item.embedded
        assert e is not None
        groups[(e.kind, e.container, e.column)].append((i, item))
    bar = progress_bar(len(todo), "file", "extracting audio", progress)
    for (kind, container, column), group in groups.items():
        wanted = {item.embedded.locator: (i, item) for i, item in group}  # type: ignore[union-attr]
        for locator, data in _payloads(kind, Path(container), column, set(wanted)):
            i, item = wanted[locator]
            path = store(data, root, _suffix(item.embedded, data))  # type: ignore[arg-type]
            items[i] = dataclasses.replace(item, path=str(path), embedded=None)
            bar.update(1)
        lost = [item for i, item in group if items[i].embedded is not None]
        if lost:
            raise ManifestError(f"{container}: {len(lost)} embedded audio entries were not found on reading it "
                                f"again (first: {lost[0].embedded.locator!r}); was it changed while indexing?")  # type: ignore[union-attr]
    bar.close()
    return dataclasses.replace(source, items=items)


def store(data: bytes, root: Path, suffix: str) -> Path:
    """Write `data` under `root` by its content digest (atomically; nothing if already there)."""
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    folder = root / digest[:2]
    target = folder / f"{digest}{suffix}"
    if target.is_file() and target.stat().st_size == len(data):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


def _suffix(embedded: Embedded, data: bytes) -> str:
    """The extension the source's file name gives, else one the first bytes identify (the decoders
    sniff content either way; the extension only helps a person or another tool)."""
    if embedded.name:
        suffix = Path(str(embedded.name)).suffix.lower()
        if suffix in AUDIO_EXTENSIONS:
            return suffix
    for magic, at, suffix in _MAGIC:
        if data[at : at + len(magic)] == magic:
            return suffix
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return ".mp3"
    return ".bin"


def _payloads(kind: str, container: Path, column: str | None, wanted: set) -> Iterator[tuple[int | str, bytes]]:
    """(locator, bytes) of the wanted entries of one container, read in order."""
    try:
        if kind == "tar":
            yield from _tar_payloads(container, wanted)
        elif kind in ("arrow", "parquet"):
            yield from _table_payloads(kind, container, column or "", wanted)
        else:
            raise ManifestError(f"{container}: unknown container kind {kind!r}")
    except OSError as exc:
        raise ManifestError(f"{container}: cannot read: {exc}") from exc


def _tar_payloads(container: Path, wanted: set) -> Iterator[tuple[str, bytes]]:
    import tarfile

    try:
        with tarfile.open(container, "r:*") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        yield member.name, f.read()
    except (tarfile.TarError, EOFError) as exc:
        raise ManifestError(f"{container}: cannot read tar shard: {exc}") from exc


def _table_payloads(kind: str, container: Path, column: str, wanted: set) -> Iterator[tuple[int, bytes]]:
    import pyarrow as pa

    if kind == "parquet":
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(container).iter_batches(batch_size=64, columns=[column])
    else:
        source = pa.memory_map(str(container))
        try:
            batches = iter(pa.ipc.open_stream(source))
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    row = 0
    for batch in batches:
        values = batch.column(batch.schema.get_field_index(column))
        data = values.field("bytes") if pa.types.is_struct(values.type) else values
        for j in range(len(batch)):
            if row + j in wanted:
                value = data[j].as_py()
                if value:
                    yield row + j, value
        row += len(batch)
