"""The parts of the request contract that depend on the collection: the filter language over its own
columns, and the attribute ranges of an export.

A generic schema (`field: string`, `value: anything`) would let a client send requests the document
calls valid and the server then refuses (an unknown column, a word compared with a number). So the
document states, for this collection, which columns exist and which operators and values each
takes. These schemas are written here as JSON Schema, put in the document as they are, and used by
the server to validate requests (`jsonschema`, draft 2020-12): what the document accepts and what
the server accepts are the same by construction. They are rebuilt when a new generation of the
collection brings new columns.

Shape of a filter, bounded so that the whole tree stays within `searchengine.filters`' limits: a
condition; a group `{"and" | "or": [...]}` of up to 16 conditions or inner groups; or a list of
those, all of which must hold. An inner group holds up to 8 conditions. A condition names a column
of one kind (number, text, boolean, time, list of text...), and the operators and values that kind
takes are stated per kind, exactly those the filter compiler accepts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema

from api.errors import ApiError
from searchengine.filters import MAX_IN_VALUES, Column, FilterError, compile_filter

GROUP_ITEMS = 16
INNER_GROUP_ITEMS = 8
MAX_RANGES = 32
COMPARISONS = ["=", "==", "!=", "<", "<=", ">", ">="]
MAX_TEXT = 1000
REF = "#/components/schemas/{model}"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def iso_timestamp(value: str) -> str:
    """An RFC 3339 date-time (what `format: date-time` means) in the ISO form the filter compiler
    reads; ValueError otherwise. A leap second is read as the second before it (datetime has no :60)."""
    m = _RFC3339.match(value)
    if not m:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    zone = m.group(8).upper()
    try:
        tz = dt.UTC if zone == "Z" else dt.timezone(
            (1 if zone[0] == "+" else -1) * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        return dt.datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=tz).isoformat()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date-time: {exc}") from None


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return True  # `format` applies to strings only; the type is checked by `type`
    try:
        iso_timestamp(value)
    except ValueError:
        return False
    return True


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(_is_timestamp)

SCALARS: dict[str, dict[str, Any]] = {
    "number": {"type": "number"},
    "text": {"type": "string", "maxLength": MAX_TEXT},
    "boolean": {"type": "boolean"},
    "time": {"type": "string", "format": "date-time"},
}
KIND_NAMES = {"number": "Number", "text": "Text", "boolean": "Boolean", "time": "Time"}


def _several(scalar: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": scalar, "minItems": 1, "maxItems": MAX_IN_VALUES}


def _forms(kind: str) -> list[tuple[str, list[str], dict[str, Any]]]:
    """(name, operators, value schema) of the conditions a column kind takes, exactly those
    `searchengine.filters` compiles for it."""
    scalar = SCALARS[kind]
    out = [("Comparison", COMPARISONS if kind != "boolean" else ["=", "==", "!="], scalar)]
    if kind in ("number", "text"):
        out.append(("In", ["in"], _several(scalar)))
    if kind in ("number", "time"):
        out.append(("Between", ["between"], {"type": "array", "items": scalar, "minItems": 2, "maxItems": 2,
                                             "description": "[low, high]; nothing matches when low > high."}))
    if kind == "text":
        out.append(("Contains", ["contains"], {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                                               "description": "Matched anywhere in the text, ignoring case."}))
    return out


def _list_forms(element: str) -> list[tuple[str, list[str], dict[str, Any]]]:
    scalar = SCALARS[element]
    return [("Contains", ["contains"], scalar), ("In", ["in"], _several(scalar))]


def _condition(title: str, column: str, ops: list[str], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "required": ["field", "op", "value"],
        "additionalProperties": False,
        "properties": {"field": {"$ref": REF.format(model=column)}, "op": {"enum": ops}, "value": value},
    }


def _group(name: str, key: str, items: dict[str, Any], most: int) -> dict[str, Any]:
    return {"type": "object", "title": name, "required": [key], "additionalProperties": False,
            "description": f"{'All' if key == 'and' else 'Any'} of up to {most} items must hold.",
            "properties": {key: {"type": "array", "items": items, "minItems": 1, "maxItems": most}}}


def filter_schemas(columns: Mapping[str, Column]) -> dict[str, dict[str, Any]]:
    """The components `Filter` refers to, for these columns."""
    kinds: dict[tuple[str, str | None], list[str]] = {}
    for name, column in sorted(columns.items()):
        element = Column(name, column.sql_type[:-2]).kind if column.kind == "list" else None
        kinds.setdefault((column.kind, element), []).append(name)
    schemas: dict[str, dict[str, Any]] = {}
    conditions: list[str] = []
    for (kind, element), names in sorted(kinds.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        prefix = f"{KIND_NAMES[element]}List" if element else KIND_NAMES[kind]
        what = f"list-of-{element}" if element else kind
        schemas[f"{prefix}Column"] = {"title": f"{prefix}Column", "enum": names,
                                      "description": f"A {what} column of this collection."}
        for name, ops, value in (_list_forms(element) if element else _forms(kind)):
            title = f"{prefix}{name}"
            schemas[title] = _condition(title, f"{prefix}Column", ops, value)
            conditions.append(title)
    condition_refs = [{"$ref": REF.format(model=n)} for n in conditions]
    schemas["Condition"] = {"title": "Condition", "anyOf": condition_refs,
                            "description": "A test on one column: {\"field\", \"op\", \"value\"}."}
    condition = {"$ref": REF.format(model="Condition")}
    inner = {"anyOf": [{"$ref": REF.format(model="InnerAnd")}, {"$ref": REF.format(model="InnerOr")}]}
    schemas["InnerAnd"] = _group("InnerAnd", "and", condition, INNER_GROUP_ITEMS)
    schemas["InnerOr"] = _group("InnerOr", "or", condition, INNER_GROUP_ITEMS)
    item = {"anyOf": [condition, *inner["anyOf"]]}
    schemas["And"] = _group("And", "and", item, GROUP_ITEMS)
    schemas["Or"] = _group("Or", "or", item, GROUP_ITEMS)
    schemas["Filter"] = {
        "title": "Filter",
        "description": "Metadata conditions over this collection's columns: a condition; a group "
                       f"{{\"and\"|\"or\": [...]}} of up to {GROUP_ITEMS} conditions or inner groups (of up to "
                       f"{INNER_GROUP_ITEMS} conditions each); or a list of those, all of which must hold. "
                       "GET /collection lists the columns and their values.",
        "anyOf": [condition, {"$ref": REF.format(model="And")}, {"$ref": REF.format(model="Or")},
                  {"type": "array", "items": item, "maxItems": GROUP_ITEMS}],
    }
    return schemas


def ranges_schemas(columns: Mapping[str, Column]) -> dict[str, dict[str, Any]]:
    numeric = sorted(n for n, c in columns.items() if c.kind == "number")
    bound = {"type": "number"}
    return {
        "Range": {"title": "Range", "type": "object", "additionalProperties": False, "minProperties": 1,
                  "description": "Bounds of one numeric column; either may be left out for an open side (not "
                                 "both). A range whose min is above its max holds no value: nothing matches.",
                  "properties": {"min": {**bound, "description": "Lowest value kept."},
                                 "max": {**bound, "description": "Highest value kept."}}},
        "Ranges": {"title": "Ranges", "type": "object", "additionalProperties": False, "maxProperties": MAX_RANGES,
                   "description": "Bounds on numeric columns, e.g. {\"m_snr_db\": {\"min\": 15}}.",
                   "properties": {name: {"$ref": REF.format(model="Range")} for name in numeric}},
    }


@dataclass(frozen=True)
class Contract:
    """The collection-dependent request schemas of one set of columns, and their validators."""

    columns: Mapping[str, Column]
    schemas: dict[str, dict[str, Any]]
    _validators: dict[str, jsonschema.protocols.Validator] = field(default_factory=dict, repr=False)

    def validator(self, name: str) -> jsonschema.protocols.Validator:
        if name not in self._validators:
            document = {"components": {"schemas": self.schemas}, "$ref": REF.format(model=name)}
            self._validators[name] = jsonschema.Draft202012Validator(document, format_checker=FORMATS)
        return self._validators[name]

    def filter_tree(self, raw: Any, loc: tuple[str, ...] = ("body", "filter")) -> Any:
        """A filter as the client sent it (parsed JSON) -> the tree `searchengine.filters` compiles
        (times in ISO form), or a 422 naming what is wrong."""
        if raw is None:
            return None
        error = jsonschema.exceptions.best_match(self.validator("Filter").iter_errors(raw))
        if error is not None:
            raise _invalid(loc, self._why(raw, error), "bad_filter")
        return _iso_times(raw, self.columns)

    def ranges_of(self, raw: Any, loc: tuple[str, ...] = ("body", "ranges")) -> dict[str, tuple[Any, Any]]:
        """Attribute ranges as sent -> {column: (low, high)}, or a 422."""
        if raw is None:
            return {}
        error = jsonschema.exceptions.best_match(self.validator("Ranges").iter_errors(raw))
        if error is not None:
            raise _invalid(loc, _message(error, loc[-1]))
        return {name: (r.get("min"), r.get("max")) for name, r in raw.items()}

    def _why(self, raw: Any, error: jsonschema.ValidationError) -> str:
        # A union's best match can be a branch the client never meant; the compiler says in one line
        # what is wrong when it can (an unknown column, an operator its type does not take).
        try:
            compile_filter(raw, self.columns)
        except (FilterError, TypeError, ValueError) as exc:
            return str(exc)  # "filter...: what is wrong"
        return _message(error, "filter")


def _message(error: jsonschema.ValidationError, name: str) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{name}{where}: {error.message}"


def _invalid(loc: tuple[str, ...], message: str, code: str = "validation_error") -> ApiError:
    return ApiError(422, message, code, detail=[{"loc": list(loc), "msg": message, "type": "value_error"}])


def _iso_times(node: Any, columns: Mapping[str, Column]) -> Any:
    """Time values in the ISO form `datetime.fromisoformat` reads (RFC 3339 allows 't', 'z')."""
    if isinstance(node, list):
        return [_iso_times(n, columns) for n in node]
    if not isinstance(node, dict):
        return node
    if "field" in node:
        column = columns.get(node["field"])
        if column is not None and column.kind == "time":
            value = node["value"]
            return {**node, "value": [iso_timestamp(v) for v in value] if isinstance(value, list)
                    else iso_timestamp(value)}
        return node
    return {k: _iso_times(v, columns) for k, v in node.items()}


@lru_cache(maxsize=8)
def _contract(signature: tuple[tuple[str, str], ...]) -> Contract:
    columns = {name: Column(name, sql_type) for name, sql_type in signature}
    return Contract(columns, {**filter_schemas(columns), **ranges_schemas(columns)})


def contract_for(columns: Mapping[str, Column]) -> Contract:
    """The contract of a collection with these filterable columns (built once per set of columns)."""
    return _contract(tuple(sorted((name, c.sql_type) for name, c in columns.items())))


def checked(body: Any, columns: Mapping[str, Column]) -> Any:
    """A request model whose `filter` (as sent) is replaced by the validated tree, or a 422."""
    tree = contract_for(columns).filter_tree(getattr(body, "filter", None))
    return body.model_copy(update={"filter": tree})
