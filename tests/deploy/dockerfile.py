"""A small Dockerfile reader for the deployment tests: stages, their instructions, ARG defaults.

Only what the checks need: line continuations, comments, `FROM image AS name`, and `${VAR}` /
`${VAR:-default}` expansion from global ARGs. Not a full BuildKit parser, which is why the tests
keep their checks to instructions this reader understands exactly.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str  # upper case: RUN, COPY, USER, ...
    args: str  # the rest of the (joined) line


@dataclass
class Stage:
    name: str
    base: str  # the FROM image, ARGs expanded
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> list[str]:
    """Join backslash continuations and drop comments and blank lines."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):  # comments inside a continued RUN are allowed
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        out.append(" ".join(current.split()))
        current = ""
    if current:
        out.append(" ".join(current.split()))
    return out


def expand(value: str, args: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(3)
        return args.get(name) or (default or "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", sub, value)


def parse(path: Path) -> tuple[dict[str, str], dict[str, Stage]]:
    """(global ARG defaults, stages by name in file order)."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            parts = shlex.split(rest)
            parts = [p for p in parts if not p.startswith("--platform")]
            base = expand(parts[0], global_args)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stage = Stage(name, base)
            stages[name] = stage
        elif stage is None:
            if keyword != "ARG":
                raise ValueError(f"{path}: {keyword} before the first FROM")
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip()
        else:
            stage.instructions.append(Instruction(keyword, rest))
    return global_args, stages


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain
