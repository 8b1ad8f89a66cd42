"""Which Python package a model's own code (`trust_remote_code`) imports but this interpreter lacks.

A downloaded model directory ships its modeling code, not the packages that code imports. When the
import fails, telling the user to download the model again sends them in a circle: this module names
the package, so the error can say to install it instead. An import of a file the directory ships
(`from .zipformer2 import ...`) is not a package: a missing one there is an incomplete copy.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

K2_WHEEL_INDEX = "https://k2-fsa.github.io/k2/installation/from_wheels.html"


def _installed(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _shipped(directory: Path, name: str) -> bool:
    return (directory / f"{name}.py").is_file() or (directory / name).is_dir()


def _unguarded_imports(path: Path) -> list[str]:
    """Top-level names of the absolute imports in `path` that no try/except guards."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    guarded = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try) for node in ast.walk(t)}
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return names


def missing_package(exc: ImportError, directory: Path) -> str | None:
    """The package `exc` is about, when it is neither installed nor a file of `directory`; else None.

    A ModuleNotFoundError names its module. transformers' own pre-check of remote code raises a plain
    ImportError listing packages, so then the directory's code is read for imports this interpreter
    cannot satisfy, among the names its message gives. Call it where the model was built (inside
    `torchaudio_shim()`), so that what the shim provides counts as installed."""
    directory = Path(directory)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        candidates = [exc.name.split(".")[0]]
    else:  # only names the message itself mentions: another ImportError is not about a package
        message = str(exc)
        candidates = [name for path in sorted(directory.glob("*.py")) for name in _unguarded_imports(path)
                      if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", message)]
    for name in candidates:
        if name and not _shipped(directory, name) and not _installed(name):
            return name
    return None


def not_installed_message(package: str, directory: Path, release: str) -> str:
    """What to do about a package the model's code needs: install it; downloading again cannot help."""
    if package == "k2":
        import torch

        torch_version = torch.__version__.split("+")[0]
        how = (f"a k2 build matching the installed torch {torch_version} from k2's own wheel index "
               f"(`pip install k2==<version>+cpu.torch{torch_version} -f https://k2-fsa.github.io/k2/cpu.html`, "
               f"or cuda.html for a CUDA torch; see {K2_WHEEL_INDEX}), since PyPI's k2 does not import on current "
               "Python")
        instead = (f"or use an unmodified copy of the release ({release}): its published code is run by others "
                   "with no k2 installed")
    else:
        how = f"usually `pip install {package}`"
        instead = f"or, if this copy's code was changed, use an unmodified copy of the release ({release})"
    return (f"the model's own code in {directory} imports the Python package '{package}', which is not installed; "
            f"downloading the model again will not add it. Install it ({how}), {instead}")


__all__ = ["missing_package", "not_installed_message"]
