"""`clsp-search models download`: the one place that reaches the network, and `models list`.

A release (searchengine.model.catalogue) is fetched with huggingface_hub's `snapshot_download` into
one directory: its own repository (or repositories) at the top, everything its code loads by name
under `by_name/<name>/`. Each repository is pinned to the commit the hub reports first, so that a
record can say exactly what was fetched: `clsp-search-download.json` lists repo, revision and the
sha256 of every file. Interrupted downloads resume (huggingface_hub keeps partial files under
`DIR/.cache/huggingface/`); progress bars are huggingface_hub's. Without network nothing is written
but the error says so, and how to bring a directory downloaded elsewhere.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from searchengine.model.catalogue import RECORD_FILE, RELEASES, Release, download_command
from searchengine.model.offline import local_copy, online

MODELS_ROOT_VARIABLE = "CLSP_SEARCH_MODELS"
NETWORK_ERROR_NAMES = ("ConnectError", "ConnectTimeout", "ProxyError", "NetworkError", "ConnectionError",
                       "OfflineModeIsEnabled", "TimeoutException", "ReadTimeout")


class NoNetworkError(RuntimeError):
    """The hub cannot be reached; the message says how to copy a downloaded directory instead."""


def models_root() -> Path:
    """Where downloads go by default and where `models list` looks: $CLSP_SEARCH_MODELS or ./models."""
    return Path(os.environ.get(MODELS_ROOT_VARIABLE) or "models")


def release(name: str) -> Release:
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(f"no released model {name!r}; known: {', '.join(sorted(RELEASES))}") from None


def is_network_error(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) means "no route to the hub"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (socket.gaierror, ConnectionError, TimeoutError)) or any(
            name in type(current).__name__ for name in NETWORK_ERROR_NAMES
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def no_network_message(name: str, directory: Path, exc: BaseException) -> str:
    return (
        f"no network: cannot reach the Hugging Face hub ({type(exc).__name__}: {exc}). "
        f"On a machine with internet access run `{download_command(name, directory)}`, then copy that whole "
        f"directory here (for example `rsync -a {directory}/ THIS_HOST:{directory.resolve()}/`, or a disk) and "
        f"use it with `--model {directory}`; nothing is fetched at load time."
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, text: str) -> None:
    """New file, fsync, rename: a reader sees the old file or the whole new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _wanted(files: list[str], patterns: tuple[str, ...] | None) -> list[str]:
    return sorted(f for f in files if patterns is None or any(fnmatch.fnmatch(f, p) for p in patterns))


def download(name: str, directory: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Fetch release `name` (and what its code loads by name) into `directory`; returns it.

    Raises NoNetworkError when the hub cannot be reached, ValueError for an unknown name."""
    entry = release(name)
    directory = Path(directory) if directory else models_root() / name
    record_path = directory / RECORD_FILE
    sources = []
    try:
        with online():
            from huggingface_hub import HfApi, snapshot_download

            api = HfApi()
            for source in entry.sources:
                info = api.model_info(source.repo_id)
                target = local_copy(directory, source.repo_id) if source.by_name else directory
                files = _wanted([s.rfilename for s in info.siblings or []], source.allow_patterns)
                log(f"{source.repo_id}@{info.sha[:12]}: {len(files)} files -> {target}")
                target.mkdir(parents=True, exist_ok=True)
                snapshot_download(source.repo_id, revision=info.sha, local_dir=str(target), allow_patterns=files)
                sources.append({"repo": source.repo_id, "revision": info.sha,
                                "path": str(target.relative_to(directory)),
                                "files": {f: sha256(target / f) for f in files}})
    except Exception as exc:
        if is_network_error(exc):
            raise NoNetworkError(no_network_message(name, directory, exc)) from exc
        raise
    if entry.config is not None and not (directory / "config.json").exists():
        write_atomically(directory / "config.json", json.dumps(entry.config, indent=2) + "\n")
    record = {"model": name, "licence": entry.licence, "downloaded": dt.datetime.now(dt.UTC).isoformat(),
              "sources": sources}
    write_atomically(record_path, json.dumps(record, indent=2) + "\n")
    return directory


def _weights_id(directory: Path) -> str:
    """The `model_id` the adapter will give the directory, from the record's sha256 when it has it."""
    config = json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else {}
    if config.get("model_type") == "paraspeechclap":
        weights = [directory / config.get("checkpoint", "")]
        name = weights[0].name.removesuffix(".pth.tar")
    else:
        weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
        name = directory.name
    weights = [w for w in weights if w.is_file()]
    if not weights:
        return f"{name}@? (no weights yet)"
    if len(weights) == 1 and (directory / RECORD_FILE).is_file():
        record = json.loads((directory / RECORD_FILE).read_text())
        for source in record.get("sources", []):
            relative = str(weights[0].relative_to(directory / source.get("path", ".")))
            if relative in source.get("files", {}):
                return f"{name}@{source['files'][relative][:12]}"
    from searchengine.model.checkpoint import file_checksum

    return f"{name}@{file_checksum(*weights)}"


def list_downloaded(root: Path | None = None) -> list[dict]:
    """Directories under `root` that `download` wrote: name, path, model id, repos and revisions."""
    root = Path(root) if root else models_root()
    found = []
    for record_path in sorted(root.glob(f"*/{RECORD_FILE}")) if root.is_dir() else []:
        directory = record_path.parent
        record = json.loads(record_path.read_text())
        found.append({"model": record.get("model"), "path": str(directory), "id": _weights_id(directory),
                      "sources": [f"{s['repo']}@{s['revision'][:12]}" for s in record.get("sources", [])]})
    return found


__all__ = ["NoNetworkError", "download", "is_network_error", "list_downloaded", "models_root", "release"]
