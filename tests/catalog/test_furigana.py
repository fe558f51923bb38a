"""Proposing furigana: glossary readings first, SudachiPy for the rest, only Japanese text."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lti_tool.catalog.furigana import annotate, propose, sudachi_reader
from lti_tool.catalog.model import GlossaryEntry
from lti_tool.cli import main

GLOSSARY = (
    GlossaryEntry("外国人", "がいこくじん", "foreign resident", None),
    GlossaryEntry("在留資格", "ざいりゅうしかく", "status of residence", None),
)


def test_glossary_reading_wins_and_existing_ruby_is_kept():
    text = annotate("外国人の{窓口|まどぐち}と在留資格", GLOSSARY, reader=None)
    assert text == "{外国人|がいこくじん}の{窓口|まどぐち}と{在留資格|ざいりゅうしかく}"


def test_sudachi_proposes_readings_over_kanji_only():
    reader = sudachi_reader()
    assert reader is not None
    assert annotate("窓口で話します", (), reader) == "{窓口|まどぐち}で{話|はな}します"


def test_propose_touches_only_japanese_and_quotes_yaml():
    source = (
        "---\nid: a01-x\ntitle:\n  ja: 外国人の相談\n  en: 外国人 in English\n"
        "objectives:\n  ja:\n    - 窓口で話す\n  en:\n    - Keep 窓口\n---\n"
        "::: ja\n窓口です。\n:::\n::: en\n窓口 stays.\n:::\n"
    )
    proposal = propose(source, GLOSSARY, sudachi_reader())
    lines = proposal.text.split("\n")
    assert lines[3] == '  ja: "{外国人|がいこくじん}の{相談|そうだん}"'
    assert lines[4] == "  en: 外国人 in English"
    assert lines[7] == '    - "{窓口|まどぐち}で{話|はな}す"'
    assert lines[9] == "    - Keep 窓口"
    assert lines[12] == "{窓口|まどぐち}です。"
    assert lines[15] == "窓口 stays."
    assert proposal.changed_lines == 3


def test_cli_writes_the_file(tmp_path: Path):
    root = tmp_path / "content"
    root.mkdir()
    (root / "glossary.yaml").write_text(
        "- term: 外国人\n  reading: がいこくじん\n  en: foreigner\n", encoding="utf-8"
    )
    unit = tmp_path / "unit.md"
    unit.write_text("---\nid: a01-x\n---\n::: ja\n外国人です。\n:::\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["content", "furigana", str(unit), "--write", "--root", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert "{外国人|がいこくじん}です。" in unit.read_text(encoding="utf-8")
