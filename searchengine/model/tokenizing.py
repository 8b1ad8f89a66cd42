"""Text tokenization without transformers: the Rust tokenizer of a tower's `tokenizer.json`.

Importing transformers costs about 2 s here (it pulls in torch._dynamo and its model registry), more
than the rest of a command-line text search together. A text query that runs on the exported text
graph (`onnx_text.py`) needs only token ids, and `tokenizers` (the library transformers' own fast
tokenizers wrap) gives them in milliseconds from the same file.

`FastTokenizer.load` returns None unless the folder has a `tokenizer.json` and a `tokenizer_config.json`
naming a tokenizer class whose model inputs are known here (`INPUT_NAMES`); callers then use
transformers' `AutoTokenizer`. Ids, type ids and masks equal transformers' for the same call
(`padding=True, truncation=True, max_length=N`), checked by tests/model/test_tokenizing.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

#: The model inputs transformers' tokenizer class returns, in its order, for the classes handled here.
INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "BertTokenizer": ("input_ids", "token_type_ids", "attention_mask"),
    "BertTokenizerFast": ("input_ids", "token_type_ids", "attention_mask"),
}
_ARRAYS = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}


class FastTokenizer:
    """Texts -> padded int64 tensors, as `AutoTokenizer(...)(texts, padding=True, truncation=True,
    max_length=max_length, return_tensors="pt")` returns them (right padding to the batch's longest)."""

    def __init__(self, tokenizer: object, input_names: tuple[str, ...], max_length: int, pad_token: str) -> None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"the tokenizer has no pad token {pad_token!r}")
        # tokenizer.json may carry its own settings (MiniLM's pads every text to 128): set both as
        # transformers does for that call, so the batch pads to its longest text.
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer
        self.input_names = input_names

    @classmethod
    def load(cls, directory: str | Path, max_length: int) -> FastTokenizer | None:
        """The fast tokenizer of a local model folder, or None where this module cannot stand in for
        transformers (no tokenizer.json, or a tokenizer class not in `INPUT_NAMES`)."""
        directory = Path(directory)
        try:
            settings = json.loads((directory / "tokenizer_config.json").read_text())
        except (OSError, ValueError):
            return None
        names = INPUT_NAMES.get(str(settings.get("tokenizer_class")))
        if names is None or not (directory / "tokenizer.json").is_file():
            return None
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(directory / "tokenizer.json")), names, max_length,
                   str(settings.get("pad_token", "[PAD]")))

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encodings = self._tokenizer.encode_batch(list(texts))
        return {name: torch.from_numpy(np.array([getattr(e, _ARRAYS[name]) for e in encodings], dtype=np.int64))
                for name in self.input_names}
