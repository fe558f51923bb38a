"""Module and unit pages, progress and settings, through launched sessions."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from lti_tool.identity.models import Member
from lti_tool.modules import services
from lti_tool.modules.models import UnitProgress
from lti_tool.web.session import ToolSession
from tests.conftest import make_user


def token_of(page) -> str:
    return parse_qs(urlsplit(page.url).query)["ts"][0]


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_unit_reading_and_self_check_update_progress(browser, reg, learner):
    page = browser.launch(reg, learner)
    ts = token_of(page)
    modules = browser.get(f"/modules/?ts={ts}")
    assert modules.status_code == 200
    assert "<ruby>科目<rp>(</rp><rt>かもく</rt>" in modules.text
    unit = browser.get(f"/modules/A/a01-first?ts={ts}")
    assert unit.status_code == 200, unit.text[:300]
    assert "本文" in unit.text
    csrf = csrf_of(unit)
    read = browser.post("/modules/A/a01-first/read", {"ts": ts, "csrf_token": csrf})
    assert read.status_code == 303
    check = browser.post(
        "/modules/A/a01-first/check", {"ts": ts, "csrf_token": csrf, "a01-first-q1": "1"}
    )
    assert check.status_code == 303
    again = browser.get(f"/modules/A/a01-first?ts={ts}")
    assert "0 of 1" in again.text or "1問中0問" in again.text
    module = browser.get(f"/modules/A?ts={ts}")
    assert "a02-first" not in module.text
    # One of the two required units is completed.
    assert 'value="50"' in module.text


def test_instructor_progress_and_csv(browser, reg, learner, instructor):
    page = browser.launch(reg, learner)
    ts = token_of(page)
    unit = browser.get(f"/modules/B/b01-first?ts={ts}")
    browser.post(
        "/modules/B/b01-first/check", {"ts": ts, "csrf_token": csrf_of(unit), "b01-first-q1": "0"}
    )
    staff = browser.launch(reg, instructor)
    sts = token_of(staff)
    progress = browser.get(f"/modules/progress?ts={sts}")
    assert progress.status_code == 200
    assert "<svg" in progress.text and "Nguyen Thi Lan" in progress.text
    csv = browser.get(f"/modules/progress.csv?ts={sts}")
    assert csv.status_code == 200
    assert csv.content.startswith("\ufeff".encode())
    text = csv.content.decode("utf-8-sig")
    assert "Nguyen Thi Lan" in text
    # A learner cannot see the report.
    assert browser.get(f"/modules/progress?ts={ts}").status_code == 403


def test_settings_are_saved_per_course(browser, reg, instructor, learner):
    staff = browser.launch(reg, instructor)
    sts = token_of(staff)
    form = browser.get(f"/modules/C/settings?ts={sts}")
    assert form.status_code == 200
    saved = browser.post(
        "/modules/C/settings",
        {
            "ts": sts,
            "csrf_token": csrf_of(form),
            "required": "c02-second",
            "position:c01-first": "2",
            "position:c02-second": "1",
            "video:c01-first": "https://www.youtube.com/watch?v=abcdefghijk",
            "opens": "",
            "due": "2026-12-24",
            "note": "がんばって",
        },
    )
    assert saved.status_code == 303
    page = browser.launch(reg, learner)
    module = browser.get(f"/modules/C?ts={token_of(page)}")
    assert "がんばって" in module.text
    assert module.text.index("c02-second") < module.text.index("c01-first")
    unit = browser.get(f"/modules/C/c01-first?ts={token_of(page)}")
    assert "youtube-nocookie.com/embed/abcdefghijk" in unit.text
    assert "frame-src https://www.youtube-nocookie.com" in unit.headers["Content-Security-Policy"]


def test_settings_and_progress_stay_in_their_course(browser, reg, instructor, learner, lms):
    staff = browser.launch(reg, instructor)
    sts = token_of(staff)
    form = browser.get(f"/modules/D/settings?ts={sts}")
    browser.post(
        "/modules/D/settings",
        {
            "ts": sts,
            "csrf_token": csrf_of(form),
            "required": "d01-first",
            "note": "コース1だけ",
        },
    )
    trainee = browser.launch(reg, learner)
    unit = browser.get(f"/modules/D/d01-first?ts={token_of(trainee)}")
    browser.post(
        "/modules/D/d01-first/check",
        {"ts": token_of(trainee), "csrf_token": csrf_of(unit), "d01-first-q1": "0"},
    )
    lms.course = {"id": "course-2", "title": "Another course", "label": "OTHER"}
    try:
        other = browser.launch(reg, make_user("Instructor", name="Other Teacher"))
    finally:
        lms.course = {
            "id": "course-1",
            "title": "外国人支援コーディネーター養成研修 2026",
            "label": "FRSC-2026",
        }
    ots = token_of(other)
    assert "コース1だけ" not in browser.get(f"/modules/D?ts={ots}").text
    progress = browser.get(f"/modules/progress?ts={ots}")
    assert "Nguyen Thi Lan" not in progress.text
    assert "Nguyen Thi Lan" not in browser.get(f"/modules/progress.csv?ts={ots}").text


def test_opening_a_unit_records_one_row_and_each_visit(browser, reg, learner, db):
    page = browser.launch(reg, learner)
    ts = token_of(page)
    assert browser.get(f"/modules/A/a01-first?ts={ts}").status_code == 200
    with db.read_scope() as session:
        [first] = session.scalars(select(UnitProgress)).all()
        opened, seen = first.opened_at, first.last_seen_at
    assert opened == seen
    assert browser.get(f"/modules/A/a01-first?ts={ts}").status_code == 200
    with db.read_scope() as session:
        [again] = session.scalars(select(UnitProgress)).all()
    assert again.id == first.id and again.opened_at == opened
    assert again.last_seen_at > seen
    # Read to the end after the visits: the same row carries it.
    csrf = csrf_of(browser.get(f"/modules/A/a01-first?ts={ts}"))
    assert browser.post("/modules/A/a01-first/read", {"ts": ts, "csrf_token": csrf}).status_code
    with db.read_scope() as session:
        [read] = session.scalars(select(UnitProgress)).all()
    assert read.id == first.id and read.read_at is not None


def test_a_unit_opened_in_another_tab_at_the_same_moment_keeps_one_row(
    browser, reg, learner, db, app
):
    browser.launch(reg, learner)
    with db.read_scope() as session:
        member = session.scalars(select(Member)).one()
    ts = ToolSession(
        member_id=member.id,
        course_id=member.course_id,
        person_id=member.person_id,
        platform_id=1,
        resource_link_pk=None,
        roles=frozenset(),
        locale="ja",
        started_at=0,
        sid="s",
    )
    with db.direct() as conn, conn.writing():
        first = services._note_open(conn, ts, "A", "a01-first", None)
    with db.direct() as conn, conn.writing():
        # This request read the module's progress before the other tab's insert landed.
        second = services._note_open(conn, ts, "A", "a01-first", None)
        assert second.id == first.id and second.unit_id == "a01-first"
    with db.read_scope() as session:
        assert len(session.scalars(select(UnitProgress)).all()) == 1


def test_a_unit_that_does_not_exist_records_nothing(browser, reg, learner, db):
    ts = token_of(browser.launch(reg, learner))
    assert browser.get(f"/modules/A/no-such-unit?ts={ts}").status_code == 404
    assert browser.get(f"/modules/Z/a01-first?ts={ts}").status_code == 404
    with db.read_scope() as session:
        assert session.scalars(select(UnitProgress)).all() == []


def test_a_module_not_open_yet_is_shown_to_instructors_only_and_records_no_visit(
    browser, reg, instructor, learner, db
):
    staff = browser.launch(reg, instructor)
    sts = token_of(staff)
    form = browser.get(f"/modules/E/settings?ts={sts}")
    saved = browser.post(
        "/modules/E/settings",
        {"ts": sts, "csrf_token": csrf_of(form), "opens": "2099-04-01", "due": ""},
    )
    assert saved.status_code == 303
    trainee = browser.launch(reg, learner)
    closed = browser.get(f"/modules/E/e01-first?ts={token_of(trainee)}")
    assert closed.status_code == 404
    assert "2099-04-01" in closed.text
    with db.read_scope() as session:
        assert session.scalars(select(UnitProgress)).all() == []
    # The instructor previews it; that visit is theirs.
    assert browser.get(f"/modules/E/e01-first?ts={sts}").status_code == 200
    with db.read_scope() as session:
        [preview] = session.scalars(select(UnitProgress)).all()
        assert "instructor" in session.get(Member, preview.member_id).roles.split()
    # Opened today, the trainee reads it.
    form = browser.get(f"/modules/E/settings?ts={sts}")
    browser.post("/modules/E/settings", {"ts": sts, "csrf_token": csrf_of(form), "opens": ""})
    assert browser.get(f"/modules/E/e01-first?ts={token_of(trainee)}").status_code == 200


def test_a_unit_page_is_one_read_and_one_write(browser, reg, learner, db, monkeypatch):
    """The page most read: aids, settings and progress in one statement, then the visit."""
    from lti_tool.db import Direct

    ts = token_of(browser.launch(reg, learner))
    sent: list[str] = []
    real = Direct.rows

    def counting(self, prepared, values):
        sent.append(prepared.plan(self.dialect).sql.split(None, 1)[0])
        return real(self, prepared, values)

    monkeypatch.setattr(Direct, "rows", counting)
    for write in ("INSERT", "UPDATE"):  # the first visit inserts, the second updates
        sent.clear()
        assert browser.get(f"/modules/A/a01-first?ts={ts}").status_code == 200
        assert sent == ["SELECT", write]
    with db.read_scope() as session:
        [row] = session.scalars(select(UnitProgress)).all()
    assert row.unit_id == "a01-first" and row.last_seen_at > row.opened_at
