"""The filter language: text syntax -> tree -> parameterised SQL, and every way it refuses input."""

from __future__ import annotations

import duckdb
import pytest

from searchengine.filters import Column, FilterError, compile_filter, parse_expression, parse_expressions

COLUMNS = {
    "duration": Column("duration", "DOUBLE"),
    "gender": Column("gender", "VARCHAR"),
    "whisper": Column("whisper", "BOOLEAN"),
    "timbre": Column("timbre", "VARCHAR[]"),
    "speaker": Column("speaker", "VARCHAR"),
}


def test_text_syntax_builds_the_api_tree() -> None:
    tree = parse_expression("duration > 3 and (gender = female or speaker in ('0012', \"a b\"))")
    assert tree == {"and": [
        {"field": "duration", "op": ">", "value": "3"},
        {"or": [{"field": "gender", "op": "=", "value": "female"},
                {"field": "speaker", "op": "in", "value": ["0012", "a b"]}]},
    ]}
    assert parse_expression("duration between 1 and 2.5") == {"field": "duration", "op": "between", "value": ["1", "2.5"]}
    assert parse_expression("timbre ~ breathy")["op"] == "contains"
    assert parse_expressions(["a = 1", "b = 2"]) == {"and": [parse_expression("a = 1"), parse_expression("b = 2")]}


@pytest.mark.parametrize("text", ["", "duration >", "duration 3", "(gender = f", "gender = f )", "x in ()"])
def test_malformed_expressions_are_refused(text: str) -> None:
    with pytest.raises(FilterError):
        parse_expression(text)


def test_values_are_bound_and_coerced_to_the_column_type() -> None:
    tree = parse_expression("duration >= 2 and whisper = true and speaker = 0012 and timbre contains breathy")
    compiled = compile_filter(tree, COLUMNS)
    assert compiled.params == [2.0, True, "0012", "breathy"]
    assert "0012" not in compiled.sql and "breathy" not in compiled.sql and compiled.sql.count("?") == 4


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"field": "nope", "op": "=", "value": 1}, "unknown field"),
        ({"field": "duration", "op": "contains", "value": "x"}, "does not apply"),
        ({"field": "duration", "op": ">", "value": "abc"}, "is a number"),
        ({"field": "gender", "op": "=", "value": 3}, "is text"),
        ({"field": "whisper", "op": "=", "value": "maybe"}, "true/false"),
        ({"field": "duration", "op": "between", "value": [1]}, "two values"),
        ({"field": "gender", "op": "in", "value": []}, "non-empty list"),
        ({"field": 'gender" = gender OR "1', "op": "=", "value": "x"}, "unknown field"),
        ({"and": []}, "non-empty list"),
        ({"and": [{"field": "gender", "op": "=", "value": "f"}], "or": []}, "exactly one key"),
    ],
)
def test_bad_conditions_name_the_problem(spec: dict, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(spec, COLUMNS)


def test_compiled_sql_runs_and_injection_in_values_is_inert() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE clips (id BIGINT, duration DOUBLE, gender VARCHAR, whisper BOOLEAN, timbre VARCHAR[], speaker VARCHAR)")
    con.execute("INSERT INTO clips VALUES (1, 2.0, 'female', false, ['breathy'], 's1'), (2, 4.0, 'male', true, [], NULL),"
                " (3, 5.0, 'female', true, ['rough', 'breathy'], 's2')")

    def ids(spec: object) -> list[int]:
        c = compile_filter(spec, COLUMNS)
        return [r[0] for r in con.execute(f"SELECT id FROM clips WHERE {c.sql} ORDER BY id", c.params).fetchall()]

    assert ids(parse_expression("duration > 3 and gender = female")) == [3]
    assert ids(parse_expression("timbre contains breathy or whisper = true")) == [1, 2, 3]
    assert ids(parse_expression("speaker != s1")) == [2, 3]  # a missing speaker is "not s1"
    assert ids(parse_expression("gender contains EMA")) == [1, 3]
    assert ids(parse_expression("duration between 2 and 4")) == [1, 2]
    assert ids({"field": "gender", "op": "=", "value": "female' OR '1'='1"}) == []
    assert ids({"field": "gender", "op": "contains", "value": "%"}) == []  # literal, not a LIKE wildcard
    assert ids({"field": "gender", "op": "=", "value": "x'; DROP TABLE clips; --"}) == []
    assert con.execute("SELECT count(*) FROM clips").fetchone()[0] == 3
