"""Metadata filters: structured conditions -> parameterised DuckDB SQL over a whitelist of columns.

A filter is a tree. Leaves are conditions ``{"field": "duration", "op": ">", "value": 3}``; inner
nodes are ``{"and": [...]}`` or ``{"or": [...]}``. The HTTP API takes that JSON as it is; the CLI
writes the same tree in a small text syntax (`parse_expression`), e.g.

    duration > 3 and (gender = female or accent in Scottish, Irish)
    timbre contains breathy
    rate_factor between 0.8 and 1.2

Why a tree and not a SQL string: user text never becomes SQL. Column names come only from the
collection's own `clips` columns (minus bookkeeping ones), each quoted by the store's `quote_ident`;
every value is a bound parameter. An unknown field, an operator that makes no sense for the column's
type, or a value of the wrong type is a `FilterError` naming what was wrong, before any SQL runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from searchengine.store.schema import quote_ident, table_columns

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "between", "contains")

HIDDEN_COLUMNS = frozenset({"content_hash", "file_size", "file_mtime_ns", "manifest_hash", "run_id"})
"""Bookkeeping columns of the store: not descriptions of a voice, so neither filterable nor facets."""

MAX_IN_VALUES = 1000
"""An `in` list longer than this is almost certainly a mistake (or an attempt to make DuckDB work hard)."""

MAX_DEPTH = 8
MAX_CONDITIONS = 64

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "FLOAT", "DOUBLE", "REAL")


class FilterError(ValueError):
    """A filter that cannot be applied; the message says which part and why."""


@dataclass(frozen=True)
class Column:
    """A filterable column and the family of values it holds."""

    name: str
    sql_type: str

    @property
    def kind(self) -> str:
        t = self.sql_type.upper()
        if t.endswith("[]"):
            return "list"
        if t.startswith(_NUMERIC) or t.startswith("DECIMAL"):
            return "number"
        if t == "BOOLEAN":
            return "boolean"
        if t.startswith("TIMESTAMP") or t == "DATE":
            return "time"
        return "text"

    @property
    def operators(self) -> tuple[str, ...]:
        return {
            "number": ("=", "!=", "<", "<=", ">", ">=", "in", "between"),
            "text": ("=", "!=", "<", "<=", ">", ">=", "in", "contains"),
            "boolean": ("=", "!="),
            "time": ("=", "!=", "<", "<=", ">", ">=", "between"),
            "list": ("contains", "in"),
        }[self.kind]


def filterable_columns(con: Any) -> dict[str, Column]:
    """The whitelist: every real `clips` column except the store's bookkeeping ones."""
    return {
        name: Column(name, dtype)
        for name, dtype in table_columns(con, "clips").items()
        if name not in HIDDEN_COLUMNS and not dtype.upper().startswith(("JSON", "STRUCT", "MAP", "BLOB"))
    }


# ------------------------------------------------------------------------------------------ compile
@dataclass(frozen=True)
class CompiledFilter:
    """A WHERE clause over `clips` with `?` placeholders and the values to bind to them."""

    sql: str
    params: list[Any]


def compile_filter(spec: Mapping[str, Any] | Sequence[Any] | None, columns: Mapping[str, Column]) -> CompiledFilter | None:
    """Validate a filter tree and turn it into SQL; None (no filter) for an empty spec.

    A list at the top level means "all of these" (what repeated CLI `--filter` flags produce).
    """
    if spec is None or (isinstance(spec, (list, tuple)) and not spec) or (isinstance(spec, Mapping) and not spec):
        return None
    if isinstance(spec, (list, tuple)):
        spec = {"and": list(spec)}
    params: list[Any] = []
    counter = [0]
    sql = _compile_node(spec, columns, params, depth=0, counter=counter, where="filter")
    return CompiledFilter(sql, params)


def _compile_node(node: Any, columns: Mapping[str, Column], params: list[Any], depth: int, counter: list[int], where: str) -> str:
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: filters nest at most {MAX_DEPTH} levels deep")
    if not isinstance(node, Mapping):
        raise FilterError(f"{where}: expected an object with 'field'/'op'/'value' or 'and'/'or', got {type(node).__name__}")
    groups = [k for k in ("and", "or") if k in node]
    if groups:
        if len(node) != 1:
            raise FilterError(f"{where}: a group has exactly one key, 'and' or 'or' (found {sorted(node)})")
        key = groups[0]
        children = node[key]
        if not isinstance(children, (list, tuple)) or not children:
            raise FilterError(f"{where}.{key}: expected a non-empty list of conditions")
        parts = [
            _compile_node(child, columns, params, depth + 1, counter, f"{where}.{key}[{i}]")
            for i, child in enumerate(children)
        ]
        return "(" + f" {key.upper()} ".join(parts) + ")"
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise FilterError(f"{where}: at most {MAX_CONDITIONS} conditions in one filter")
    extra = set(node) - {"field", "op", "value"}
    if extra:
        raise FilterError(f"{where}: unknown keys {sorted(extra)} (a condition has field, op, value)")
    return _compile_condition(node.get("field"), node.get("op"), node.get("value"), columns, params, where)


def _compile_condition(
    field: Any, op: Any, value: Any, columns: Mapping[str, Column], params: list[Any], where: str
) -> str:
    if not isinstance(field, str) or field not in columns:
        known = ", ".join(sorted(columns))
        raise FilterError(f"{where}: unknown field {field!r}; filterable fields are: {known}")
    column = columns[field]
    op = "=" if op == "==" else op
    if op not in OPERATORS:
        raise FilterError(f"{where}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op not in column.operators:
        raise FilterError(
            f"{where}: operator {op!r} does not apply to {field} ({column.kind}); use one of {', '.join(column.operators)}"
        )
    ident = quote_ident(column.name)
    if op in ("in",):
        values = value if isinstance(value, (list, tuple)) else None
        if not values:
            raise FilterError(f"{where}: 'in' needs a non-empty list of values")
        if len(values) > MAX_IN_VALUES:
            raise FilterError(f"{where}: 'in' takes at most {MAX_IN_VALUES} values")
        element = Column(column.name, column.sql_type[:-2]) if column.kind == "list" else column
        params.append([_coerce(v, element, where) for v in values])
        return f"list_has_any({ident}, ?)" if column.kind == "list" else f"list_contains(?, {ident})"
    if op == "between":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise FilterError(f"{where}: 'between' needs two values [low, high]")
        low, high = (_coerce(v, column, where) for v in value)
        params.extend([low, high])
        return f"({ident} BETWEEN ? AND ?)"
    if op == "contains":
        if column.kind == "list":
            element = Column(column.name, column.sql_type[:-2])
            params.append(_coerce(value, element, where))
            return f"list_contains({ident}, ?)"
        if not isinstance(value, str) or not value:
            raise FilterError(f"{where}: 'contains' on {field} needs a non-empty text value")
        params.append(value.lower())
        # contains(), not LIKE: the value is matched literally, '%' and '_' in it mean themselves.
        return f"contains(lower({ident}), ?)"
    if isinstance(value, (list, tuple, Mapping)):
        raise FilterError(f"{where}: operator {op!r} needs a single value, not a {type(value).__name__}")
    params.append(_coerce(value, column, where))
    if op == "!=":
        # Rows where the field is missing count as "not equal", as a user reading the filter expects.
        return f"({ident} IS DISTINCT FROM ?)"
    return f"({ident} {op} ?)"


def _coerce(value: Any, column: Column, where: str) -> Any:
    """Check a value against the column type; text (from the CLI or a form) is converted when it parses."""
    kind = column.kind
    if value is None:
        raise FilterError(f"{where}: value for {column.name} is missing")
    if kind == "number":
        if isinstance(value, bool):
            raise FilterError(f"{where}: {column.name} is a number, got a boolean")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise FilterError(f"{where}: {column.name} is a number, {value!r} is not") from None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FilterError(f"{where}: {column.name} is a number, got {value!r}")
        return value
    if kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise FilterError(f"{where}: {column.name} is true/false, got {value!r}")
        return value
    if kind == "time":
        if not isinstance(value, str):
            raise FilterError(f"{where}: {column.name} is a time; give it as ISO text, e.g. 2024-05-01T12:00:00")
        import datetime as dt

        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise FilterError(f"{where}: {value!r} is not an ISO date/time") from None
    if not isinstance(value, str):
        raise FilterError(f"{where}: {column.name} is text, got {type(value).__name__} {value!r}")
    if len(value) > 1000:
        raise FilterError(f"{where}: value for {column.name} is longer than 1000 characters")
    return value


# --------------------------------------------------------------------------------- text syntax
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) | (?P<lb>\[) | (?P<rb>\]) | (?P<comma>,)
      | (?P<op><=|>=|!=|==|<>|=|<|>|~)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<word>[^\s(),\[\]=<>!~"']+)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"in", "between", "contains"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot read filter {text!r} at position {pos}: {text[pos:pos + 12]!r}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        out.append((kind, raw))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    """expr := and ('or' and)* ; and := atom ('and' atom)* ; atom := '(' expr ')' | FIELD OP VALUE."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"filter {self.text!r} ends too early")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> dict[str, Any]:
        node = self.expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r} in filter {self.text!r}")
        return node

    def expr(self) -> dict[str, Any]:
        parts = [self.conj()]
        while self.keyword("or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else {"or": parts}

    def conj(self) -> dict[str, Any]:
        parts = [self.atom()]
        while self.keyword("and"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else {"and": parts}

    def atom(self) -> dict[str, Any]:
        kind, raw = self.take()
        if kind == "lp":
            node = self.expr()
            if self.take()[0] != "rp":
                raise FilterError(f"missing ')' in filter {self.text!r}")
            return node
        if kind not in ("word", "str"):
            raise FilterError(f"expected a field name in filter {self.text!r}, found {raw!r}")
        field = raw
        kind, op = self.take()
        if kind == "word" and op.lower() in _WORD_OPS:
            op = op.lower()
        elif kind == "op":
            op = {"==": "=", "<>": "!=", "~": "contains"}.get(op, op)
        else:
            raise FilterError(f"expected an operator after {field!r} in filter {self.text!r}, found {op!r}")
        if op == "in":
            return {"field": field, "op": op, "value": self.value_list()}
        if op == "between":
            low = self.scalar()
            if not (self.keyword("and") or (self.peek() and self.peek()[0] == "comma" and self.take())):
                raise FilterError(f"'between' needs 'LOW and HIGH' in filter {self.text!r}")
            return {"field": field, "op": op, "value": [low, self.scalar()]}
        return {"field": field, "op": op, "value": self.scalar()}

    def scalar(self) -> str:
        kind, raw = self.take()
        if kind not in ("word", "str"):
            raise FilterError(f"expected a value in filter {self.text!r}, found {raw!r}")
        return raw

    def value_list(self) -> list[str]:
        closing = {"lp": "rp", "lb": "rb"}.get(self.peek()[0] if self.peek() else "", None)
        if closing:
            self.take()
        values = [self.scalar()]
        while self.peek() and self.peek()[0] == "comma":
            self.take()
            values.append(self.scalar())
        if closing and self.take()[0] != closing:
            raise FilterError(f"unclosed list in filter {self.text!r}")
        return values


def parse_expression(text: str) -> dict[str, Any]:
    """Parse the CLI's filter syntax into the API's filter tree (values stay text; `compile_filter`
    converts them to the column's type, so `speaker = 0012` keeps its leading zeros)."""
    if not text or not text.strip():
        raise FilterError("empty filter expression")
    return _Parser(text).parse()


def parse_expressions(texts: Sequence[str]) -> dict[str, Any] | None:
    """Several `--filter` flags: all of them must hold."""
    nodes = [parse_expression(t) for t in texts]
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else {"and": nodes}
