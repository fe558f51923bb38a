"""Ruby markup and Markdown rendering, including hostile input."""

from __future__ import annotations

import pytest

from lti_tool.catalog.markdown import render_markdown
from lti_tool.catalog.ruby import check_ruby, render_inline, strip_ruby


def test_word_ruby():
    assert render_inline("{外国人|がいこくじん}") == (
        "<ruby>外国人<rp>(</rp><rt>がいこくじん</rt><rp>)</rp></ruby>"
    )


def test_per_character_ruby():
    assert render_inline("{漢字|かん|じ}") == (
        "<ruby>漢<rp>(</rp><rt>かん</rt><rp>)</rp>字<rp>(</rp><rt>じ</rt><rp>)</rp></ruby>"
    )


def test_text_around_ruby_is_escaped():
    html = render_inline("<b>{東京|とうきょう}</b> & {<i>|x}")
    assert "<b>" not in html and "&lt;b&gt;" in html and "&amp;" in html
    assert "<ruby>&lt;i&gt;<rp>" in html


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{漢字|かん|じ|x}", "exactly one per character (2)"),
        ("{漢字|}", "unmatched '{'"),
        ("{漢字", "unmatched '{'"),
        ("漢字}", "unmatched '}'"),
    ],
)
def test_ruby_problems_are_named(text, message):
    problems = check_ruby(text)
    assert problems and message in problems[0].message


def test_strip_ruby():
    assert strip_ruby("{在留|ざいりゅう}カード") == "在留カード"


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        "![x](https://evil.example/x.png)",
        "<style>body{display:none}</style>",
        "<div onclick=alert(1)>x</div>",
    ],
)
def test_hostile_markdown_is_neutralised(hostile):
    tags, attributes = parse(str(render_markdown(hostile)))
    assert set(tags) <= {"p", "a"}
    for name, value in attributes:
        assert not name.startswith("on")
        assert not (value or "").lower().startswith("javascript")


def parse(html: str) -> tuple[list[str], list[tuple[str, str | None]]]:
    from html.parser import HTMLParser

    tags: list[str] = []
    attributes: list[tuple[str, str | None]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            attributes.extend(attrs)

    Collect().feed(html)
    return tags, attributes


def test_markdown_keeps_ruby_links_and_tables():
    html = str(
        render_markdown(
            "{相談|そうだん}は[ISA](https://www.moj.go.jp/isa/)へ。\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |"
        )
    )
    assert "<ruby>相談<rp>(</rp><rt>そうだん</rt>" in html
    assert '<a href="https://www.moj.go.jp/isa/" rel="noopener noreferrer">ISA</a>' in html
    assert "<table>" in html


def test_ruby_inside_a_table_keeps_the_table():
    html = str(
        render_markdown(
            "| {国籍|こくせき} | {人数|にん|ずう} |\n|---|---|\n| {中国|ちゅうごく} | 1 |"
        )
    )
    assert html.count("<th>") == 2 and html.count("<td>") == 2
    assert "<th><ruby>国籍<rp>(</rp><rt>こくせき</rt>" in html
    assert "<ruby>人<rp>(</rp><rt>にん</rt><rp>)</rp>数<rp>(</rp><rt>ずう</rt>" in html
