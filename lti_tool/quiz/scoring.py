"""Scoring a response against a question snapshot: pure functions, one point per question.

Multiple response, partial credit: each right option chosen adds 1/k (k = the number of right
options), each wrong option chosen takes 1/k away, never below zero. Matching: the share of
pairs matched. Short answer: right when, after normalisation, it equals an accepted answer.
"""

from __future__ import annotations

import unicodedata
from typing import Any

MULTIPLE_RULE = (
    "each right option chosen adds a share, each wrong option chosen takes a share away, "
    "never below zero"
)


def normalise_japanese(text: str) -> str:
    """Full/half-width (NFKC), katakana to hiragana, no spaces, lower case, no trailing 。."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)
    text = "".join(c for c in text if not c.isspace())
    return text.rstrip("。.")


def score_response(snapshot: dict[str, Any], response: Any) -> float:
    """The points (0–1) a response earns; an absent or malformed response earns 0."""
    kind = snapshot["type"]
    if response is None:
        return 0.0
    if kind == "single":
        return 1.0 if response == snapshot["answer"] else 0.0
    if kind == "truefalse":
        return 1.0 if response is snapshot["answer"] else 0.0
    if kind == "multiple":
        if not isinstance(response, list):
            return 0.0
        right = set(snapshot["answer"])
        chosen = {choice for choice in response if isinstance(choice, int)}
        share = 1 / len(right)
        return max(0.0, round(share * len(chosen & right) - share * len(chosen - right), 4))
    if kind == "matching":
        if not isinstance(response, dict):
            return 0.0
        pairs = len(snapshot["pairs"])
        matched = sum(1 for left in range(pairs) if response.get(str(left)) == left)
        return round(matched / pairs, 4)
    if kind == "short":
        if not isinstance(response, str):
            return 0.0
        given = normalise_japanese(response)
        return (
            1.0
            if given and any(given == normalise_japanese(a) for a in snapshot["accepted"])
            else 0.0
        )
    return 0.0


def is_answered(snapshot: dict[str, Any], response: Any) -> bool:
    if response is None:
        return False
    if snapshot["type"] == "multiple":
        return isinstance(response, list) and bool(response)
    if snapshot["type"] == "matching":
        return isinstance(response, dict) and len(response) == len(snapshot["pairs"])
    if snapshot["type"] == "short":
        return isinstance(response, str) and bool(response.strip())
    return True
