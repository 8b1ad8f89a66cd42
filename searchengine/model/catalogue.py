"""The released models `clsp-search models download` knows: where each comes from, and what its code
loads by name, which is fetched into the same directory (`by_name/<name>`, searchengine.model.offline).

Plain data, no network: `cli/models.py` downloads from it, the adapters name what is missing from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from searchengine.model.offline import local_copy

RECORD_FILE = "clsp-search-download.json"
"""Written beside a downloaded model: for every file, its repo, revision and sha256."""


@dataclass(frozen=True)
class Source:
    """One Hugging Face repository and the files taken from it (None: all)."""

    repo_id: str
    allow_patterns: tuple[str, ...] | None = None
    by_name: bool = False  # True: asked for by name by the model's code; stored under by_name/<repo_id>


@dataclass(frozen=True)
class Release:
    """A released model: its sources and, when the release has no config.json of ours, the one written."""

    name: str
    sources: tuple[Source, ...]
    licence: str
    config: dict | None = None  # written as config.json (ParaSpeechCLAP ships bare .pth.tar files)

    @property
    def by_name(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.by_name)

    def missing_by_name(self, directory: Path) -> list[Path]:
        """Local copies of by-name dependencies that `directory` lacks (no config.json there)."""
        return [local_copy(directory, s.repo_id) for s in self.by_name
                if not (local_copy(directory, s.repo_id) / "config.json").is_file()]


TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "sentencepiece.bpe.model")

RELEASES: dict[str, Release] = {
    "clsp": Release(
        "clsp",
        (
            Source("yfyeung/CLSP"),
            # its constructor calls RobertaModel.from_pretrained("roberta-base"): weights too
            Source("roberta-base", (*TOKENIZER_FILES, "model.safetensors"), by_name=True),
        ),
        licence="Apache-2.0 (code and weights)",
    ),
    "paraspeechclap": Release(
        "paraspeechclap",
        (
            Source("ajd12342/paraspeechclap-intrinsic", ("*.pth.tar", "README.md")),
            Source("ajd12342/paraspeechclap-situational", ("*.pth.tar", "README.md")),
            Source("ajd12342/paraspeechclap-combined", ("*.pth.tar", "README.md")),
            # every weight of both towers is in the .pth.tar (strict load): their configs, the
            # feature extractor's and the tokenizer's files are what the code needs by name
            Source("microsoft/wavlm-large", ("config.json", "preprocessor_config.json"), by_name=True),
            Source("ibm-granite/granite-embedding-278m-multilingual", TOKENIZER_FILES, by_name=True),
        ),
        licence="MIT code, CC-BY-NC-SA-4.0 weights",
        config={
            "model_type": "paraspeechclap", "checkpoint": "paraspeechclap-combined.pth.tar",
            "speech_name": "microsoft/wavlm-large", "text_name": "ibm-granite/granite-embedding-278m-multilingual",
            "embedding_dim": 768, "projection_dropout": 0.5,
        },
    ),
}


def download_command(name: str, directory: Path | str) -> str:
    return f"clsp-search models download {name} --dir {directory}"


__all__ = ["RECORD_FILE", "RELEASES", "Release", "Source", "download_command"]
