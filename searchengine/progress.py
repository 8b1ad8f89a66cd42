"""One progress bar for long loops (indexing files, encoding speech or text).

Callers always get an object with `update`, `set_postfix` and `close`, shown or not, so a loop never
branches on whether the user asked for a bar. The bar is tqdm's, on stderr, so stdout stays clean
for the output a command is run for (summaries, JSON).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol


class ProgressBar(Protocol):
    """What a loop may do with a bar: the subset of tqdm's interface the code base uses."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, **fields: Any) -> Any: ...

    def close(self) -> Any: ...


class _Hidden:
    """A bar nobody sees: every call is a no-op."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, unit: str, desc: str, show: bool = True) -> ProgressBar:
    """A tqdm bar over `total` `unit`s labelled `desc`, or a silent stand-in when `show` is false.

    tqdm is imported only when a bar is shown, so quiet library calls never pay for it.
    """
    if not show:
        return _Hidden()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True)
