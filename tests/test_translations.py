"""The Japanese catalog is complete and sound, and the pages really come out in Japanese.

The messages are extracted afresh from the source with the mapping of babel.cfg and the keywords
of `make messages`, so a string added without its translation fails here, named with its file and
line, even when nobody has run `make messages`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import PYTHON_FORMAT, Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from tests.platform.driver import Browser
from tests.platform.lms import ToolRegistration, User

ROOT = Path(__file__).resolve().parent.parent
BABEL_CFG = ROOT / "babel.cfg"
JA_PO = ROOT / "lti_tool" / "translations" / "ja" / "LC_MESSAGES" / "messages.po"
# `make messages`: Babel's defaults (`_`, `gettext`, `ngettext`, …) plus Flask-Babel's lazy forms.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
# A named placeholder, e.g. %(name)s, as a catalog without the python-format flag may still hold.
NAMED_PLACEHOLDER = re.compile(r"%\([^)]*\)")


@cache
def source_messages() -> dict[str, list[str]]:
    """Every msgid in the source (singular form for plurals), with where it occurs."""
    with BABEL_CFG.open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, str(BABEL_CFG))  # type: ignore[no-untyped-call]
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        msgid = singular(message)
        if msgid:
            found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@cache
def ja_catalog() -> Catalog:
    with JA_PO.open("rb") as po:
        return read_po(po, locale="ja")


def singular(text: object) -> str:
    """A msgid or msgstr as one string: the first form of a plural."""
    if isinstance(text, (tuple, list)):
        return str(text[0]) if text else ""
    return str(text or "")


def translation(catalog: Catalog, msgid: str) -> str:
    message = catalog.get(msgid)
    return singular(message.string) if message is not None else ""


def translated(catalog: Catalog) -> Iterator[Message]:
    return (message for message in catalog if message.id)


def msgstrs(message: Message) -> list[str]:
    if isinstance(message.string, (tuple, list)):
        return [str(s or "") for s in message.string]
    return [str(message.string or "")]


def placeholders(text: str) -> Counter[tuple[str, str]]:
    """Python-format placeholders by (name, conversion); `%%` counts as ("", "%")."""
    return Counter((name or "", kind) for name, _flags, kind in PYTHON_FORMAT.findall(text))


def test_the_source_has_messages() -> None:
    """The extraction itself works: it finds strings of the Python code and of the templates."""
    found = source_messages()
    assert "Competency modules" in found  # a template
    assert "This launch was refused" in found  # lazy_gettext in Python
    assert len(found) > 100


def test_every_source_message_is_in_the_japanese_catalog() -> None:
    catalog = ja_catalog()
    missing = [
        f"{msgid!r} ({', '.join(places[:2])})"
        for msgid, places in sorted(source_messages().items())
        if catalog.get(msgid) is None
    ]
    assert not missing, (
        f"{len(missing)} message(s) missing from {JA_PO.relative_to(ROOT)}; run `make messages` "
        "and translate them:\n  " + "\n  ".join(missing)
    )


def test_no_translation_is_empty_or_fuzzy() -> None:
    catalog = ja_catalog()
    assert not catalog.fuzzy, "the catalog header is fuzzy: pybabel compile would skip it"
    empty = [m.id for m in translated(catalog) if not all(s.strip() for s in msgstrs(m))]
    fuzzy = [m.id for m in translated(catalog) if m.fuzzy]
    assert not empty, f"{len(empty)} empty Japanese msgstr:\n  " + "\n  ".join(map(repr, empty))
    assert not fuzzy, f"{len(fuzzy)} fuzzy Japanese msgstr:\n  " + "\n  ".join(map(repr, fuzzy))


def test_translations_keep_the_placeholders() -> None:
    wrong = []
    for message in translated(ja_catalog()):
        msgid = singular(message.id)
        expected = placeholders(msgid) if message.python_format else Counter()
        for text in msgstrs(message):
            if message.python_format:
                ok = placeholders(text) == expected
            else:
                # Jinja's newstyle gettext always %-formats: a bare % there raises, so write ％.
                ok = "%" not in text and not NAMED_PLACEHOLDER.search(text)
            if not ok:
                wrong.append(f"{msgid!r} -> {text!r}")
    assert not wrong, "placeholders differ from the msgid:\n  " + "\n  ".join(wrong)


def test_the_placeholder_check_can_fail() -> None:
    assert placeholders("%(total)s件中%(done)s件") == placeholders("%(done)s of %(total)s")
    assert placeholders("単元%(m)s") != placeholders("Unit %(n)s")
    assert placeholders("合格点 %(n)s%%") != placeholders("合格点 %(n)s％")


def test_a_learner_launched_in_japanese_reads_japanese(
    browser: Browser, reg: ToolRegistration, learner: User
) -> None:
    page = browser.launch(reg, learner, locale="ja")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert '<html lang="ja">' in html
    catalog = ja_catalog()
    for english in ("Competency modules", "Skip to main content", "Your course"):
        japanese = translation(catalog, english)
        assert japanese and JAPANESE.search(japanese), f"no Japanese for {english!r}"
        assert japanese in html, f"{japanese!r} (for {english!r}) is not on the course page"
        assert english not in html, f"the English {english!r} is on the Japanese course page"


@pytest.mark.parametrize("msgid", ["Competency modules"])
def test_the_known_string_is_really_translated(msgid: str) -> None:
    """Guards test_a_learner_…: its string must stay a real, Japanese translation."""
    japanese = translation(ja_catalog(), msgid)
    assert japanese != msgid
    assert JAPANESE.search(japanese)
