"""The collection-dependent schemas (api/contract.py) agree with the filter compiler they stand in
front of, and the text patterns mean what Python's strip() means; no server needed."""

from __future__ import annotations

import re

import pytest

from api.contract import contract_for, iso_timestamp
from api.errors import ApiError
from api.schemas import NOT_BLANK
from searchengine.filters import Column, compile_filter

COLUMNS = {name: Column(name, t) for name, t in {
    "duration": "DOUBLE", "segment": "INTEGER", "gender": "VARCHAR", "whisper": "BOOLEAN",
    "added_at": "TIMESTAMP", "timbre": "VARCHAR[]"}.items()}


def test_not_blank_is_what_strip_keeps() -> None:
    pattern = re.compile(NOT_BLANK)
    for code in range(0x3100):
        c = chr(code)
        assert bool(pattern.search(c)) == bool(c.strip()), hex(code)


def test_timestamps_are_rfc3339() -> None:
    assert iso_timestamp("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00+00:00"
    assert iso_timestamp("2024-05-01t12:00:00.5+02:00") == "2024-05-01T12:00:00.500000+02:00"
    assert iso_timestamp("2016-12-31T23:59:60Z").startswith("2016-12-31T23:59:59")
    for bad in ("2024-05-01", "2024-05-01 12:00:00Z", "1700000000", "2024-02-30T00:00:00Z", "2024-05-01T12:00Z"):
        with pytest.raises(ValueError):
            iso_timestamp(bad)


ACCEPTED = [
    {"field": "duration", "op": ">", "value": 3},
    {"field": "duration", "op": "between", "value": [5, 1]},
    {"field": "segment", "op": "in", "value": [0, 1.5]},
    {"field": "gender", "op": "==", "value": "female"},
    {"field": "gender", "op": "contains", "value": "fem"},
    {"field": "whisper", "op": "!=", "value": True},
    {"field": "added_at", "op": "<", "value": "2030-01-01T00:00:00Z"},
    {"field": "timbre", "op": "contains", "value": "breathy"},
    {"field": "timbre", "op": "in", "value": ["breathy", "husky"]},
    {"or": [{"field": "gender", "op": "=", "value": "male"}, {"and": [{"field": "duration", "op": "<", "value": 2}]}]},
    [{"field": "duration", "op": ">", "value": 1}, {"or": [{"field": "whisper", "op": "=", "value": False}]}],
    [],
]
REFUSED = [
    {"field": "nope", "op": "=", "value": 1},
    {"field": "duration", "op": ">", "value": "3"},  # the compiler would read it; the schema says number
    {"field": "duration", "op": "contains", "value": "3"},
    {"field": "duration", "op": "between", "value": [1]},
    {"field": "gender", "op": "in", "value": []},
    {"field": "gender", "op": "contains", "value": ""},
    {"field": "whisper", "op": ">", "value": True},
    {"field": "whisper", "op": "=", "value": 1},
    {"field": "added_at", "op": "=", "value": "yesterday"},
    {"field": "timbre", "op": "=", "value": "breathy"},
    {"field": "duration", "op": ">", "value": 1, "extra": 1},
    {"and": [], "or": []},
    {"and": [{"or": [{"and": [{"field": "duration", "op": ">", "value": 1}]}]}]},  # deeper than the schema's groups
    {"and": [{"field": "duration", "op": ">", "value": 1}] * 17},
]


@pytest.mark.parametrize("spec", ACCEPTED)
def test_what_the_schema_accepts_compiles(spec) -> None:
    tree = contract_for(COLUMNS).filter_tree(spec)
    compile_filter(tree, COLUMNS)  # raises on a tree the schema should have refused


@pytest.mark.parametrize("spec", REFUSED)
def test_what_the_schema_refuses_is_a_422(spec) -> None:
    with pytest.raises(ApiError) as refused:
        contract_for(COLUMNS).filter_tree(spec)
    assert refused.value.status == 422 and refused.value.error == "bad_filter" and refused.value.message


def test_ranges_name_numeric_columns_only() -> None:
    contract = contract_for(COLUMNS)
    assert contract.ranges_of({"duration": {"min": 1}, "segment": {"max": 2}}) == {"duration": (1, None),
                                                                                  "segment": (None, 2)}
    for bad in ({"gender": {"min": 1}}, {"duration": {}}, {"duration": {"min": "1"}}, {"duration": {"low": 1}}):
        with pytest.raises(ApiError):
            contract.ranges_of(bad)
    assert contract_for(dict(COLUMNS)) is contract  # built once per set of columns
