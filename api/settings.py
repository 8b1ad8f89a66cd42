"""Server configuration: limits and where audio may be read from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from searchengine.search import MAX_PAGE_TOP_K


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; generous for people, small enough that no request hogs the box."""

    max_top_k: int = MAX_PAGE_TOP_K  # a server may lower it; the request schema caps it there
    max_export: int = 10_000
    max_upload_bytes: int = 50 * 1024 * 1024
    max_audio_seconds: float = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` needs besides the collection."""

    limits: Limits = field(default_factory=Limits)
    audio_roots: tuple[Path, ...] | None = None  # None: the directories of the indexed sources
    web_dir: Path | None = None  # None: the repository's web/ when it has an index.html
    model: str | None = None  # model name/path; None: the one the collection records
    device: str = "cpu"
    api_keys: tuple[str, ...] = ()  # when given, every operation but /health needs one (api.auth)
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none: CORS stays off
    reload_s: float = 1.0  # how often to look for a newly committed generation; 0: serve the one opened at start
