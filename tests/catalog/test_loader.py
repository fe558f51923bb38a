"""The content loader: good files load, each kind of bad file is named with file, line, message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lti_tool.catalog.loader import ContentInvalid, load_catalog
from lti_tool.cli import main

FIXTURE = Path(__file__).parent.parent / "fixtures" / "content"
UNIT = "modules/A/a01-first.md"


@pytest.fixture
def content(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    shutil.copytree(FIXTURE, root)
    return root


def problems_of(root: Path) -> list[str]:
    with pytest.raises(ContentInvalid) as caught:
        load_catalog(root)
    return [str(p) for p in caught.value.problems]


def replace(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_fixture_loads_and_is_immutable():
    catalog = load_catalog(FIXTURE)
    assert [m.id for m in catalog.modules] == ["A", "B", "C", "D", "E"]
    assert len(catalog.units) == 10 and len(catalog.questions) == 13
    unit = catalog.unit("a01-first")
    assert unit is not None and unit.has_easy
    assert "<ruby>本文" in unit.body("ja")
    with pytest.raises(TypeError):
        catalog.units["x"] = unit  # type: ignore[index]


def test_the_shipped_content_is_valid():
    catalog = load_catalog(Path(__file__).parents[2] / "content")
    assert len(catalog.modules) == 5
    assert all(module.units for module in catalog.modules)


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        (
            UNIT,
            "id: a01-first\n",
            "id: A01\n",
            "content/modules/A/a01-first.md:2: id: like 'a01-why-coordinators'",
        ),
        (UNIT, "  en: Unit A01\n", "", "content/modules/A/a01-first.md:3: title: missing en"),
        (
            UNIT,
            "::: en\nBody A01",
            "::: fr\nBody A01",
            "content/modules/A/a01-first.md:1: body: missing '::: en' section",
        ),
        (
            UNIT,
            "{本文|ほんぶん}",
            "{本文|ほん|ぶ|ん}",
            "content/modules/A/a01-first.md:29: ruby '{本文|ほん|ぶ|ん}'",
        ),
        (
            UNIT,
            "sources: [S0]",
            "sources: [S99]",
            "content/modules/A/a01-first.md:26: sources: unknown source 'S99'",
        ),
        (
            UNIT,
            "sources: [S0]\n",
            "",
            "content/modules/A/a01-first.md:2: sources: cite at least one source",
        ),
        (
            UNIT,
            "minutes: 15",
            "minutes: many",
            "content/modules/A/a01-first.md:7: minutes: a whole number from 1 to 240",
        ),
        (
            UNIT,
            "    answer: 0",
            "    answer: 5",
            "content/modules/A/a01-first.md:22: self_check: answer must be an option's index",
        ),
        (UNIT, "title:\n", "title: [\n", "content/modules/A/a01-first.md:5: YAML:"),
        (
            UNIT,
            "::: en\nBody A01.",
            "::: en\nSee [the law](/law). Body A01.",
            "content/modules/A/a01-first.md:35: link '/law': use an absolute https:// URL",
        ),
        (
            UNIT,
            "minutes: 15\n",
            "minutes: 15\ncolour: red\n",
            "content/modules/A/a01-first.md:8: unit: unknown key 'colour'",
        ),
        (
            "modules/A/module.yaml",
            "  - a02-second\n",
            "  - a02-second\n  - a03-missing\n",
            "content/modules/A/module.yaml:15: unit 'a03-missing' has no file a03-missing.md",
        ),
        (
            "modules/A/module.yaml",
            "  - a02-second\n",
            "",
            "content/modules/A/a02-second.md:1: unit file not listed in module.yaml",
        ),
        (
            "modules/B/module.yaml",
            "  - b01-first\n",
            "  - a01-first\n  - b01-first\n",
            "content/modules/B/module.yaml:13: unit 'a01-first' is listed twice",
        ),
        (
            "quiz/bank.yaml",
            "  area: B\n  difficulty: 1",
            "  area: Z\n  difficulty: 1",
            "content/quiz/bank.yaml:27: question q-b-single: area must be one of A–E",
        ),
        (
            "quiz/bank.yaml",
            "  answer: [0, 1]",
            "  answer: [0, 7]",
            "content/quiz/bank.yaml:23: question q-a-multiple: "
            "answer must list option indices (0–2)",
        ),
        (
            "quiz/bank.yaml",
            '  accepted: ["ヤサシイニホンゴ", "easy japanese"]',
            "  accepted: []",
            "content/quiz/bank.yaml:149: question q-short: accepted must list the right answers",
        ),
        (
            "sources.yaml",
            "- id: S0",
            "- id: S0\n  url: http://insecure.example\n",
            "content/sources.yaml:3: source S0: url must be https://",
        ),
    ],
)
def test_each_problem_is_named_with_file_and_line(content, relative, old, new, expected):
    replace(content, relative, old, new)
    found = problems_of(content)
    assert any(problem.startswith(expected) for problem in found), found


def test_a_missing_module_and_a_stray_folder(content):
    shutil.rmtree(content / "modules" / "E")
    (content / "modules" / "F").mkdir()
    found = problems_of(content)
    assert "content/modules/E:1: module E is missing" in found
    assert "content/modules/F:1: unknown module folder 'F' (A to E)" in found


def test_a_broken_file_is_not_utf8(content):
    (content / UNIT).write_bytes(b"---\nid: \xff\xfe\n---\n")
    assert problems_of(content) == ["content/modules/A/a01-first.md:1: not UTF-8 text"]


def test_content_check_cli_reports_problems_and_exits_nonzero(content):
    replace(content, UNIT, "sources: [S0]", "sources: [S99]")
    result = CliRunner().invoke(main, ["content", "check", "--root", str(content)])
    assert result.exit_code == 1
    assert "a01-first.md:26: sources: unknown source 'S99'" in result.output
    assert "1 problems" in result.output


def test_content_check_cli_says_ok():
    result = CliRunner().invoke(main, ["content", "check", "--root", str(FIXTURE)])
    assert result.exit_code == 0
    assert "content ok: 5 modules, 10 units, 13 test questions" in result.output


def test_the_app_refuses_to_start_on_invalid_content(content, tmp_path):
    from lti_tool.app import create_app
    from lti_tool.config import Config

    replace(content, UNIT, "sources: [S0]", "sources: [S99]")
    config = Config(
        database_url=f"sqlite:///{tmp_path}/x.db",
        tool_base_url="http://127.0.0.1:9",
        secret_key="s" * 40,
        instance_dir=tmp_path,
        testing=True,
        content_dir=content,
    )
    with pytest.raises(ContentInvalid, match="unknown source 'S99'"):
        create_app(config)


def test_glossary_terms_link_to_their_definitions():
    unit = load_catalog(FIXTURE).unit("a01-first")
    body = str(unit.body("ja"))
    assert '<a href="#term-0" title="単元の中心となる文章。"' in body
    assert body.count('href="#term-0"') == 1  # only the first use
    # 大切 has no definition: a fixed reading only, not linked.
    assert [entry.term for _, entry in unit.linked_terms] == ["本文"]
    assert "#term-" not in str(unit.body("en"))


def test_content_stats_counts_units_characters_and_questions():
    result = CliRunner().invoke(main, ["content", "stats", "--root", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert "area A: 2 units; body characters ja " in result.output
    assert "questions: 13; by area A 3, B 3, C 3, D 2, E 2" in result.output
    assert "scenarios: 1; glossary terms: 2" in result.output
