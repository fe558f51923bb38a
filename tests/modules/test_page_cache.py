"""Unit pages are rendered once per shape and served with each reader's own tokens filled in
(web.templating.PageCache): every cached page must equal its plain rendering."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import render_template

from lti_tool.web.templating import PageCache
from tests.conftest import make_user


def token_of(page) -> str:
    return parse_qs(urlsplit(page.url).query)["ts"][0]


def tokens_on(html: str) -> dict[str, str]:
    """The reader's tokens as the page carries them: session, CSRF, and the new-window one."""
    found = {
        "session": re.search(r'data-token="([^"]+)"', html).group(1),
        "csrf": re.search(r'data-csrf="([^"]+)"', html).group(1),
    }
    window = re.search(r'class="new-window" href="[^"]*[?&]ts=([^"&]+)', html)
    if window:
        found["window"] = window.group(1)
    return found


def normalised(html: str, tokens=tokens_on) -> str:
    for name, value in tokens(html).items():
        html = html.replace(value, f"<{name} token>")
    return html


@pytest.fixture
def plain(monkeypatch):
    """Turns the cache off: each page rendered by its template alone."""

    def render_plainly(self, key, template, fills=None, **context):
        return render_template(template, **context, **(fills or {}))

    def switch(on: bool) -> None:
        if on:
            monkeypatch.setattr(PageCache, "render", render_plainly)
        else:
            monkeypatch.undo()

    return switch


def assert_same_as_plain(browser, plain, url: str, tokens=tokens_on) -> str:
    """The page at `url`, twice through the cache (the first may fill it) and once plainly
    rendered: the same but for each request's own tokens."""
    cached = [browser.get(url) for _ in range(2)]
    plain(True)
    try:
        reference = browser.get(url)
    finally:
        plain(False)
    for page in [*cached, reference]:
        assert page.status_code == 200, page.text[:300]
        assert "tsunaguHole" not in page.text
    expected = normalised(reference.text, tokens)
    assert normalised(cached[0].text, tokens) == expected
    assert normalised(cached[1].text, tokens) == expected
    return cached[1].text


def csrf_of(html: str) -> str:
    return tokens_on(html)["csrf"]


def test_cached_unit_pages_equal_their_plain_rendering_in_every_state(
    browser, reg, learner, instructor, plain
):
    ts = token_of(browser.launch(reg, learner))
    url = f"/modules/E/e01-first?ts={ts}"
    html = assert_same_as_plain(browser, plain, url)  # opened

    browser.post("/modules/E/e01-first/read", {"ts": ts, "csrf_token": csrf_of(html)})
    html = assert_same_as_plain(browser, plain, url)  # read to the end
    assert 'data-read="true"' in html

    question = re.search(r'<input type="radio" name="([^"]+)"', html).group(1)
    browser.post(
        "/modules/E/e01-first/check", {"ts": ts, "csrf_token": csrf_of(html), question: "0"}
    )
    html = assert_same_as_plain(browser, plain, url)  # self-check answered
    assert re.search(r'value="0" required\s+checked', html)

    browser.post(
        "/modules/reading-aids",
        {"ts": ts, "csrf_token": csrf_of(html), "furigana": "off", "next": "/modules/"},
    )
    html = assert_same_as_plain(browser, plain, url)  # furigana off
    assert 'class="furigana-off"' in html

    browser.post(
        "/modules/reading-aids",
        {"ts": ts, "csrf_token": csrf_of(html), "easy": "on", "next": "/modules/"},
    )
    html = assert_same_as_plain(browser, plain, url)  # easy Japanese
    assert 'data-easy="true"' in html

    switched = browser.http.post(
        browser.tool_url + "/language",
        data={"ts": ts, "csrf_token": csrf_of(html), "lang": "en", "next": "/modules/E/e01-first"},
        allow_redirects=False,
        timeout=10,
    )
    assert switched.status_code == 303
    english = parse_qs(urlsplit(switched.headers["Location"]).query)["ts"][0]
    html = assert_same_as_plain(browser, plain, f"/modules/E/e01-first?ts={english}")
    assert '<html lang="en">' in html

    # The instructor gives the unit a video, then reorders the module: each is another page.
    sts = token_of(browser.launch(reg, instructor))

    def configure(**fields: str) -> None:
        form = browser.get(f"/modules/E/settings?ts={sts}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        saved = browser.post("/modules/E/settings", {"ts": sts, "csrf_token": csrf, **fields})
        assert saved.status_code == 303

    ts = token_of(browser.launch(reg, learner))
    url = f"/modules/E/e01-first?ts={ts}"
    configure(**{"position:e01-first": "1", "position:e02-second": "2"})
    assert_same_as_plain(browser, plain, url)  # the course's own settings, same order
    configure(**{"video:e01-first": "https://vimeo.com/123456"})
    html = assert_same_as_plain(browser, plain, url)
    assert "player.vimeo.com/video/123456" in html
    configure(
        **{
            "video:e01-first": "https://vimeo.com/123456",
            "position:e01-first": "2",
            "position:e02-second": "1",
        }
    )
    html = assert_same_as_plain(browser, plain, url)
    assert 'rel="prev"' in html and 'rel="next"' not in html  # now the second of two


def test_a_cached_page_carries_each_readers_own_tokens(browser, reg, learner):
    other = make_user("Learner", name="Other Reader")
    first = browser.get(f"/modules/A/a01-first?ts={token_of(browser.launch(reg, learner))}")
    second_ts = token_of(browser.launch(reg, other))
    second = browser.get(f"/modules/A/a01-first?ts={second_ts}")
    mine, theirs = tokens_on(first.text), tokens_on(second.text)
    assert mine["session"] != theirs["session"] and mine["csrf"] != theirs["csrf"]
    for token in mine.values():
        assert token not in second.text
    # The second reader's page works as theirs: its form posts with its own tokens.
    read = browser.post(
        "/modules/A/a01-first/read", {"ts": theirs["session"], "csrf_token": theirs["csrf"]}
    )
    assert read.status_code == 303
    again = browser.get(f"/modules/A/a01-first?ts={theirs['session']}")
    assert 'data-read="true"' in again.text
    assert 'data-read="false"' in browser.get(f"/modules/A/a01-first?ts={mine['session']}").text


def test_the_cache_never_keeps_a_page_that_shows_a_readers_own_token(app, monkeypatch):
    cache = PageCache()
    from lti_tool.web import templating

    monkeypatch.setattr(templating, "current_session", lambda: object())
    monkeypatch.setattr(templating, "session_token", lambda: "reader-one-token")
    monkeypatch.setattr(templating, "csrf_token", lambda: "reader-one-csrf")
    monkeypatch.setattr(templating, "window_token", lambda: None)
    leaky = app.jinja_env.from_string("<p>{{ leaked }}</p><i>{{ csrf_token() }}</i>")
    monkeypatch.setattr(
        templating,
        "render_template",
        lambda _name, **ctx: leaky.render(**{"csrf_token": templating.csrf_token, **ctx}),
    )
    with app.test_request_context("/"):
        # A template that prints the token without the hole: served, never kept.
        assert cache.render("k", "t", leaked="reader-one-token") == (
            b"<p>reader-one-token</p><i>reader-one-csrf</i>"
        )
        assert len(cache) == 0
        # Through the hole it is kept, and filled per reader.
        assert cache.render("k", "t", leaked="") == b"<p></p><i>reader-one-csrf</i>"
        assert len(cache) == 1
        monkeypatch.setattr(templating, "csrf_token", lambda: "reader-two-csrf")
        assert cache.render("k", "t", leaked="") == b"<p></p><i>reader-two-csrf</i>"


def test_the_cache_keeps_at_most_its_budget_oldest_pages_first(app, monkeypatch):
    from lti_tool.web import templating

    monkeypatch.setattr(templating, "current_session", lambda: object())
    monkeypatch.setattr(templating, "session_token", lambda: "t")
    monkeypatch.setattr(templating, "csrf_token", lambda: "c")
    monkeypatch.setattr(templating, "window_token", lambda: None)
    monkeypatch.setattr(templating, "render_template", lambda _name, **ctx: "x" * ctx["n"])
    cache = PageCache(max_bytes=100)
    with app.test_request_context("/"):
        for key, n in enumerate([40, 40, 40, 10, 500]):
            assert cache.render(key, "t", n=n) == b"x" * n
    # 40 + 40 + 40 is over budget: the first went; 500 alone is over it: never kept.
    assert len(cache) == 3 and cache.size == 90
    rendered: list[int] = []
    monkeypatch.setattr(
        templating,
        "render_template",
        lambda _name, **ctx: rendered.append(ctx["n"]) or "x" * ctx["n"],
    )
    with app.test_request_context("/"):
        for key, n in [(1, 40), (2, 40), (3, 10), (0, 40)]:
            cache.render(key, "t", n=n)
    assert rendered == [40]  # only the one forgotten is rendered again


def course_tokens(html: str) -> dict[str, str]:
    found = {"csrf": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)}
    found["session"] = re.search(r'name="ts" value="([^"]+)"', html).group(1)
    window = re.search(r'class="new-window" href="[^"]*[?&]ts=([^"&]+)', html)
    if window:
        found["window"] = window.group(1)
    return found


def assert_course_same_as_plain(browser, plain, url: str) -> str:
    return assert_same_as_plain(browser, plain, url, tokens=course_tokens)


def test_cached_course_homes_equal_their_plain_rendering(browser, reg, instructor, plain, lms):
    hostile = make_user("Learner", name='<b>"O\'Brien & Co"</b>')
    ts = token_of(browser.launch(reg, hostile))
    html = assert_course_same_as_plain(browser, plain, f"/course?ts={ts}")
    assert "&lt;b&gt;&#34;O&#39;Brien &amp; Co&#34;&lt;/b&gt;" in html
    assert "<b>" not in html
    assert_course_same_as_plain(browser, plain, f"/course?ts={ts}&activity=pending")
    # A reader whose platform withholds the name, and one in a course of another title.
    nameless = make_user("Learner", name=None, given_name=None, family_name=None)
    nts = token_of(browser.launch(reg, nameless))
    assert_course_same_as_plain(browser, plain, f"/course?ts={nts}")
    course = lms.course
    lms.course = {"id": "course-2", "title": "Another course", "label": "OTHER"}
    try:
        elsewhere = token_of(browser.launch(reg, make_user("Learner", name=hostile.name)))
    finally:
        lms.course = course
    html = assert_course_same_as_plain(browser, plain, f"/course?ts={elsewhere}")
    assert "Another course" in html

    # Progress and an instructor's due date change the page.
    unit = browser.get(f"/modules/A/a01-first?ts={ts}")
    question = re.search(r'<input type="radio" name="([^"]+)"', unit.text).group(1)
    browser.post(
        "/modules/A/a01-first/check",
        {"ts": ts, "csrf_token": tokens_on(unit.text)["csrf"], question: "0"},
    )
    html = assert_course_same_as_plain(browser, plain, f"/course?ts={ts}")
    assert 'value="50"' in html
    sts = token_of(browser.launch(reg, instructor))
    form = browser.get(f"/modules/B/settings?ts={sts}")
    browser.post(
        "/modules/B/settings",
        {
            "ts": sts,
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1),
            "required": ["b01-first", "b02-second"],
            "due": "2020-01-31",
        },
    )
    html = assert_course_same_as_plain(browser, plain, f"/course?ts={ts}")
    assert 'class="overdue"' in html

    # The instructor's own view of the page.
    assert_course_same_as_plain(browser, plain, f"/course?ts={sts}")


def test_readers_sharing_a_cached_course_home_each_see_their_own_name(browser, reg):
    first = make_user("Learner", name="Nguyen Thi Lan")
    second = make_user("Learner", name="Maria Santos Oliveira")
    one = browser.get(f"/course?ts={token_of(browser.launch(reg, first))}")
    two = browser.get(f"/course?ts={token_of(browser.launch(reg, second))}")
    assert "Nguyen Thi Lan" in one.text and "Maria Santos Oliveira" not in one.text
    assert "Maria Santos Oliveira" in two.text and "Nguyen Thi Lan" not in two.text
    assert course_tokens(one.text)["session"] not in two.text
