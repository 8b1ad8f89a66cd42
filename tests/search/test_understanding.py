"""Query understanding: descriptions -> soft constraints over measured attributes, uncovered words,
capability notices; and the fusion that applies them."""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.capabilities import CANNOT, RANKS, UNMEASURED, capabilities_for, from_declaration, notices
from searchengine.understanding import AttributeTable, Reranker, parse, understand


def _keys(query: str) -> list[str]:
    return [c.key for c in parse(query).constraints]


def _uncovered(query: str) -> list[tuple[str, str | None]]:
    return [(u.words, u.property) for u in parse(query).uncovered]


@pytest.mark.parametrize(("query", "keys"), [
    ("a man speaking", ["gender:male"]),
    ("a woman speaking", ["gender:female"]),
    ("a deep-voiced guy on the phone", ["pitch:low", "gender:male", "channel:telephone"]),
    ("fast speech over a telephone line", ["pace:high", "channel:telephone"]),
    ("a deep voice far from the microphone in an echoey hall", ["pitch:low", "distance:high"]),
    ("a woman whispering in a quiet room", ["gender:female", "whisper:whisper", "noise:low"]),
    ("no background noise, not fast", ["noise:low", "pace:low"]),
    ("a low quality recording", ["quality:low"]),
    ("a quiet, soft-spoken voice", ["loudness:low"]),  # two words, one constraint
    ("a monotone male voice", ["expressiveness:low", "gender:male"]),
    ("at a normal pace", ["pace:mid"]),
    ("not at a normal pace", []),  # a negated "medium" says nothing
    ("unhurriedly", ["pace:low"]),  # held-out caption wording is in the vocabulary too
])
def test_descriptions_become_constraints(query: str, keys: list[str]) -> None:
    assert _keys(query) == keys


def test_intensifiers_and_words_are_kept() -> None:
    (pitch, gender) = parse("a very high-pitched woman").constraints
    assert (pitch.key, pitch.very, pitch.words) == ("pitch:high", True, "high-pitched")
    assert not gender.very and gender.words == "woman"
    assert pitch.label("female") == "pitch: very high (for a woman)"


def test_words_no_signal_covers_are_reported_with_their_property() -> None:
    assert _uncovered("an angry man") == [("angry", "emotion")]
    assert _uncovered("a man with a French accent") == [("french accent", "accent")]
    assert _uncovered("a breathy young woman whispering") == [("breathy", "timbre"), ("young", "age")]
    assert _uncovered("a pirate speaking quickly") == [("pirate", None)]
    assert _uncovered("a man speaking") == []


def _table() -> AttributeTable:
    """Six measured clips: ids 10..15; even ids are women, pace rises with the id, clip 15 is a
    telephone-band recording and clip 11 has no pace measured."""
    ids = np.arange(10, 16)
    columns = {
        "m_rate_syl_per_s": np.array([2.0, np.nan, 4.0, 5.0, 6.0, 7.0]),
        "m_f0_median_hz": np.array([210.0, 100.0, 190.0, 120.0, 230.0, 90.0]),
        "m_bandwidth_hz": np.array([8000.0, 8000.0, 7800.0, 8000.0, 8000.0, 3875.0]),
    }
    p_female = np.array([0.95, 0.1, 0.9, 0.2, 1.0, 0.0])
    return AttributeTable(ids, columns, p_female)


def test_constraints_score_clips_against_the_collections_quantiles() -> None:
    table = _table()
    fast = parse("fast").constraints[0]
    s = table.scores(fast)
    assert s[1] == 0.5  # not measured: neither kept nor pushed
    assert list(np.argsort(s[[0, 2, 3, 4, 5]])) == [0, 1, 2, 3, 4]  # faster scores higher
    phone = table.scores(parse("on the phone").constraints[0])
    assert phone[5] == 1.0 and phone[:5].max() == 0.0
    man = table.scores(parse("a man").constraints[0])
    np.testing.assert_allclose(man, 1 - table.p_female)
    # pitch within the named gender: the highest woman (230 Hz) and the highest man (120 Hz) both top their group
    high = table.scores(parse("high-pitched").constraints[0], gender="male")
    assert high[3] == max(high[[1, 3, 5]])


def test_the_reranker_keeps_a_model_order_that_meets_every_constraint_and_demotes_the_rest() -> None:
    table = _table()
    reranker = Reranker(table, parse("a man on the phone").constraints, "male")
    model = {10: 0.50, 11: 0.40, 15: 0.30, 13: 0.20}
    final = reranker.fuse(model)
    assert final[15] == pytest.approx(0.30)  # meets both: keeps its model score
    assert sorted(final, key=lambda c: -final[c])[0] == 15
    assert final[10] < model[10]
    assert reranker.candidates(2, None, set())[0] == 15
    assert 15 not in reranker.candidates(2, np.array([10, 11, 12]), set())
    assert 15 not in reranker.candidates(2, None, {15})


def test_dropped_and_unmeasured_constraints_are_reported_not_applied() -> None:
    table = _table()
    u = understand("a fast man, loud, on the phone", table, drop=["gender:male"])
    assert [c.key for c in u.constraints] == ["pace:high", "channel:telephone"]
    assert [c.key for c in u.dropped] == ["gender:male"]
    assert [c.key for c in u.unavailable] == ["loudness:high"]  # the table has no loudness column
    statuses = {d["key"]: d["status"] for d in u.understood_dicts()}
    assert statuses == {"pace:high": "applied", "channel:telephone": "applied", "gender:male": "dropped",
                        "loudness:high": "not measured in this collection"}
    assert understand("a fast man", None).reranker is None


def test_bundled_model_declares_from_its_figures(encoder) -> None:
    caps = capabilities_for(encoder.model_id)  # the declaration is for exactly the bundled weights
    assert caps.status("gender") == RANKS and caps.status("pace") == RANKS
    assert caps.status("accent") == CANNOT and "0.054" in caps.evidence("accent")
    assert caps.status("emotion") == CANNOT
    assert caps.status("timbre") == UNMEASURED
    assert capabilities_for("clsp-mini@000000000000").declared == {}  # other weights: nothing claimed
    # the rule: half-way from chance to perfect
    assert from_declaration({"zero_shot": {"x": {"weighted_accuracy": 0.74, "classes": 2}}}).status("x") == CANNOT
    assert from_declaration({"zero_shot": {"x": {"weighted_accuracy": 0.76, "classes": 2}}}).status("x") == RANKS


def test_notices_name_what_cannot_be_ranked_and_who_can() -> None:
    caps = capabilities_for("clsp-mini@88ac1c305584")
    found = notices(parse("an angry man with a French accent, whispering").uncovered, caps, "clsp-mini",
                    columns=["accent", "duration"])
    by = {n["property"]: n for n in found}
    assert set(by) == {"emotion", "accent"}
    assert by["emotion"]["words"] == ["angry"] and "released CLSP" in by["emotion"]["who_can"]
    assert "cannot rank emotion" in by["emotion"]["message"]
    assert by["accent"]["filter_column"] == "accent" and by["emotion"]["filter_column"] is None
    assert notices(parse("a breathy old man").uncovered, caps, "clsp-mini") == []  # the model may rank these


def test_a_whisper_has_no_pitch_to_rank() -> None:
    """A whisper's stray F0 reading (about 540 Hz on whispered synthetic voices) must not make it the
    "highest-pitched" clip: pitch and intonation count only as far as the clip is voiced speech."""
    ids = np.arange(6)
    f0 = np.array([540.0, 540.0, 300.0, 100.0, 90.0, 80.0])
    columns = {"m_f0_median_hz": f0, "m_f0_spread_st": np.array([0.1, 0.1, 3.0, 2.0, 1.0, 1.5]),
               "m_voiced_share": np.array([0.01, 0.8, 0.3, 0.7, 0.7, 0.7])}  # 0: a whisper, 2: half voiced
    high = parse("high-pitched").constraints[0]
    blind = AttributeTable(ids, {"m_f0_median_hz": f0}, np.ones(6)).scores(high)  # voicing unknown
    got = AttributeTable(ids, columns, np.ones(6)).scores(high)
    assert got[0] == 0.5 and blind[0] >= 0.8  # the whisper: not measured, however high its stray F0
    assert got[1] == blind[1] and got[3] == blind[3]  # voiced speech: its pitch as measured
    assert 0.5 < got[2] < blind[2]  # half voiced: half trusted
    flat = AttributeTable(ids, columns, np.ones(6)).scores(parse("monotone").constraints[0])
    assert flat[0] == 0.5 and flat[1] > flat[3]
