"""Scoring rules, one point per question, on question snapshots."""

from __future__ import annotations

import pytest

from lti_tool.quiz.scoring import is_answered, normalise_japanese, score_response

SINGLE = {"type": "single", "answer": 1, "options": [{}, {}, {}]}
MULTIPLE = {"type": "multiple", "answer": [0, 2], "options": [{}, {}, {}, {}]}
TRUEFALSE = {"type": "truefalse", "answer": False}
MATCHING = {"type": "matching", "pairs": [{}, {}, {}, {}]}
SHORT = {"type": "short", "accepted": ["ザイリュウカード", "residence card"]}


@pytest.mark.parametrize(
    ("snapshot", "response", "points"),
    [
        (SINGLE, 1, 1.0),
        (SINGLE, 0, 0.0),
        (SINGLE, None, 0.0),
        (SINGLE, "1", 0.0),
        (MULTIPLE, [0, 2], 1.0),
        (MULTIPLE, [0], 0.5),
        (MULTIPLE, [0, 1], 0.0),
        (MULTIPLE, [0, 2, 3], 0.5),
        (MULTIPLE, [1, 3], 0.0),
        (MULTIPLE, "0,2", 0.0),
        (TRUEFALSE, False, 1.0),
        (TRUEFALSE, True, 0.0),
        (TRUEFALSE, 0, 0.0),
        (MATCHING, {"0": 0, "1": 1, "2": 2, "3": 3}, 1.0),
        (MATCHING, {"0": 0, "1": 2, "2": 1, "3": 3}, 0.5),
        (MATCHING, {"0": 1}, 0.0),
        (MATCHING, [0, 1], 0.0),
        (SHORT, "ざいりゅうかーど", 1.0),
        (SHORT, "ｻﾞｲﾘｭｳｶｰﾄﾞ", 1.0),
        (SHORT, " Residence  Card ", 1.0),
        (SHORT, "ＲＥＳＩＤＥＮＣＥ　ＣＡＲＤ。", 1.0),
        (SHORT, "passport", 0.0),
        (SHORT, "", 0.0),
    ],
)
def test_points(snapshot, response, points):
    assert score_response(snapshot, response) == points


def test_normalisation_unifies_width_and_kana():
    assert normalise_japanese("ＡＢＣ　カナ") == normalise_japanese("abcかな")


def test_answered_means_complete():
    assert not is_answered(MATCHING, {"0": 0})
    assert is_answered(MATCHING, {"0": 0, "1": 1, "2": 2, "3": 3})
    assert not is_answered(MULTIPLE, [])
    assert not is_answered(SHORT, "  ")
    assert is_answered(TRUEFALSE, False)
