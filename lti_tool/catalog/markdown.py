"""Markdown → sanitised HTML, with ruby markup as an inline rule.

markdown-it-py renders (raw HTML in the source is escaped, not passed through); nh3 then
sanitises the result anyway, allowing only the tags a unit needs.
"""

from __future__ import annotations

import re
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markupsafe import Markup

from lti_tool.catalog.ruby import RUBY_PATTERN, ruby_html, split_readings

ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "ul",
    "ol",
    "li",
    "a",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "code",
    "pre",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "hr",
    "ruby",
    "rt",
    "rp",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"scope"}, "td": set()}
ALLOWED_SCHEMES = {"https", "http", "mailto", "tel"}


# Ruby's `|` would split a Markdown table cell: before parsing, ruby groups use this private-use
# character instead, which no text contains.
_BAR = "\ue000"
_PROTECTED_RUBY = re.compile(r"\{([^{}\ue000\n]+)\ue000([^{}\n]+)\}")


def _protect(match: re.Match[str]) -> str:
    return "{" + match.group(1) + _BAR + match.group(2).replace("|", _BAR) + "}"


def _ruby_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "{":
        return False
    match = _PROTECTED_RUBY.match(state.src, state.pos)
    if match is None:
        return False
    readings = split_readings(match.group(1), match.group(2).replace(_BAR, "|"))
    if readings is None:
        return False
    if not silent:
        token = state.push("ruby", "", 0)
        token.content = ruby_html(match.group(1), readings)
    state.pos = match.end()
    return True


def _render_ruby(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    return str(tokens[idx].content)


def _make_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.inline.ruler.before("text", "ruby", _ruby_rule)
    # `{` must stop the text rule so the ruby rule gets a chance at it.
    md.add_render_rule("ruby", _render_ruby)
    return md


_PARSER = _make_parser()


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="noopener noreferrer",
    )


def render_markdown(source: str) -> Markup:
    protected = RUBY_PATTERN.sub(_protect, source)
    return Markup(sanitise(_PARSER.render(protected)))  # noqa: S704 - sanitised by nh3 just above
