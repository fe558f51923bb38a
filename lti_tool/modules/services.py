"""Module and unit pages, progress, instructor settings, and progress reports — per course."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import Column, Table, and_, bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from lti_tool.catalog.model import Catalog, Module, Unit
from lti_tool.db import Direct, Prepared, per_dialect, utcnow
from lti_tool.errors import BadRequest, NotFound
from lti_tool.grading import services as grading
from lti_tool.identity.models import Member, Person, ResourceLink
from lti_tool.linking.models import Placement, ResourceLinkPlacement
from lti_tool.lti.roles import decode_roles, has_staff_rights
from lti_tool.modules.models import ModuleSettings, UnitProgress
from lti_tool.web.session import ToolSession

TOKYO = ZoneInfo("Asia/Tokyo")
MAX_NOTE = 2000


def module_key(module_id: str) -> str:
    return f"module:{module_id}"


# --- settings ---------------------------------------------------------------------------------


# The queries every module and unit page runs, built once with bind parameters.
_SETTINGS_OF_MODULE = select(ModuleSettings).where(
    ModuleSettings.course_id == bindparam("course_id"),
    ModuleSettings.module_id == bindparam("module_id"),
)


def _columns_of(table: Table, view: type[Any]) -> list[Column[Any]]:
    """The table's columns that a read-only view (a dataclass) names, in its fields' order."""
    return [table.c[field.name] for field in fields(view)]


_SETTINGS_TABLE = cast(Table, ModuleSettings.__table__)


@dataclass(frozen=True, slots=True)
class Settings:
    """A course's settings for a module as pages show them (a row of `ModuleSettings`, read
    without the ORM; `settings_for` gives the row to change)."""

    module_id: str
    unit_order: list[str] | None
    required_units: list[str] | None
    video_urls: dict[str, str]
    opens_at: dt.datetime | None
    due_at: dt.datetime | None
    note: str | None
    send_completion_grade: bool

    @classmethod
    def of(cls, row: Sequence[Any]) -> Settings:
        """From a row of its columns, in its fields' order (as `_columns_of` selects them)."""
        values = dict(zip((field.name for field in fields(cls)), row, strict=True))
        values["video_urls"] = values["video_urls"] or {}
        values["send_completion_grade"] = bool(values["send_completion_grade"])
        return cls(**values)


_SETTINGS_VIEW_OF_COURSE = select(*_columns_of(_SETTINGS_TABLE, Settings)).where(
    _SETTINGS_TABLE.c.course_id == bindparam("course_id")
)
_SETTINGS_VIEW_OF_MODULE = _SETTINGS_VIEW_OF_COURSE.where(
    _SETTINGS_TABLE.c.module_id == bindparam("module_id")
)


_SETTINGS_OF_COURSE_READ = Prepared(_SETTINGS_VIEW_OF_COURSE)
_SETTINGS_OF_MODULE_READ = Prepared(_SETTINGS_VIEW_OF_MODULE)


def settings_view(reader: Direct, course_id: int, module_id: str) -> Settings | None:
    row = reader.first(_SETTINGS_OF_MODULE_READ, {"course_id": course_id, "module_id": module_id})
    return Settings.of(row) if row is not None else None


_PROGRESS_TABLE = cast(Table, UnitProgress.__table__)


@dataclass(slots=True)
class Progress:
    """A reader's progress in a unit as pages show it (a row of `UnitProgress`, read without
    the ORM: pages read many and change none)."""

    id: int
    module_id: str
    unit_id: str
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    read_at: dt.datetime | None = None
    checked_at: dt.datetime | None = None
    check_correct: int | None = None
    check_total: int | None = None
    check_answers: dict[str, Any] | None = None

    @property
    def completed(self) -> bool:
        return self.checked_at is not None


def settings_for(session: Session, course_id: int, module_id: str) -> ModuleSettings | None:
    return session.scalars(
        _SETTINGS_OF_MODULE, {"course_id": course_id, "module_id": module_id}
    ).first()


def ordered_units(module: Module, settings: Settings | None) -> list[Unit]:
    if settings is None or not settings.unit_order:
        return list(module.units)
    by_id = {unit.id: unit for unit in module.units}
    ordered = [by_id[uid] for uid in settings.unit_order if uid in by_id]
    return ordered + [unit for unit in module.units if unit not in ordered]


def required_ids(module: Module, settings: Settings | None) -> set[str]:
    all_ids = {unit.id for unit in module.units}
    if settings is None or settings.required_units is None:
        return all_ids
    return all_ids & set(settings.required_units)


def _module(catalog: Catalog, module_id: str) -> Module:
    module = catalog.module(module_id)
    if module is None:
        raise NotFound(_l("There is no module “%(id)s”.", id=module_id[:5]))
    return module


def _unit(module: Module, unit_id: str) -> Unit:
    unit = next((u for u in module.units if u.id == unit_id), None)
    if unit is None:
        raise NotFound(_l("This unit does not exist."))
    return unit


# --- learner views ----------------------------------------------------------------------------


_PROGRESS_COLUMNS = _columns_of(_PROGRESS_TABLE, Progress)
_PROGRESS_OF_MEMBER = select(*_PROGRESS_COLUMNS).where(
    _PROGRESS_TABLE.c.member_id == bindparam("member_id")
)
_PROGRESS_IN_MODULE = _PROGRESS_OF_MEMBER.where(
    _PROGRESS_TABLE.c.module_id == bindparam("module_id")
)


@dataclass(frozen=True)
class UnitStatus:
    unit: Unit
    required: bool
    progress: Progress | None

    @property
    def state(self) -> str:
        if self.progress is None:
            return "not_started"
        if self.progress.completed:
            return "completed"
        if self.progress.read_at is not None:
            return "read"
        return "opened"


@dataclass(frozen=True)
class ModulePage:
    module: Module
    settings: Settings | None
    units: list[UnitStatus]
    is_open: bool

    # Computed once per page (a module page shows them several times).
    @cached_property
    def required_count(self) -> int:
        return sum(1 for status in self.units if status.required)

    @cached_property
    def completed_required(self) -> int:
        return sum(1 for s in self.units if s.required and s.state == "completed")

    @cached_property
    def percent(self) -> int:
        if not self.required_count:
            return 100
        return round(100 * self.completed_required / self.required_count)

    @property
    def resume(self) -> Unit | None:
        """Where the reader stopped: the last unit opened and not completed, else the next
        unit not completed."""
        touched = [s for s in self.units if s.progress is not None and s.state != "completed"]
        if touched:
            return max(touched, key=lambda s: s.progress.last_seen_at).unit  # type: ignore[union-attr]
        return next((s.unit for s in self.units if s.state != "completed"), None)

    @property
    def is_overdue(self) -> bool:
        due = self.settings.due_at if self.settings else None
        return due is not None and due < utcnow() and self.percent < 100


_PROGRESS_OF_MEMBER_READ = Prepared(_PROGRESS_OF_MEMBER)
_PROGRESS_IN_MODULE_READ = Prepared(_PROGRESS_IN_MODULE)
_UNIT_ID_AT = [field.name for field in fields(Progress)].index("unit_id")


def _progress_rows(
    reader: Direct, member_id: int, module_id: str | None = None
) -> dict[str, Progress]:
    if module_id is None:
        rows = reader.rows(_PROGRESS_OF_MEMBER_READ, {"member_id": member_id})
    else:
        rows = reader.rows(
            _PROGRESS_IN_MODULE_READ, {"member_id": member_id, "module_id": module_id}
        )
    return _progress_by_unit(rows)


def _progress_by_unit(rows: Iterable[Sequence[Any]]) -> dict[str, Progress]:
    return {row[_UNIT_ID_AT]: Progress(*row) for row in rows}


def _module_open(settings: Settings | None) -> bool:
    return settings is None or settings.opens_at is None or settings.opens_at <= utcnow()


def module_page(session: Session, catalog: Catalog, ts: ToolSession, module_id: str) -> ModulePage:
    module = _module(catalog, module_id)
    reader = Direct.within(session)
    settings = settings_view(reader, ts.course_id, module.id)
    progress = _progress_rows(reader, ts.member_id, module.id)
    return _module_page(module, settings, progress, ts)


def _module_page(
    module: Module, settings: Settings | None, progress: Mapping[str, Progress], ts: ToolSession
) -> ModulePage:
    required = required_ids(module, settings)
    units = [
        UnitStatus(unit, unit.id in required, progress.get(unit.id))
        for unit in ordered_units(module, settings)
    ]
    return ModulePage(module, settings, units, _module_open(settings) or ts.is_staff)


def _course_settings(reader: Direct, course_id: int) -> dict[str, Settings]:
    """The course's settings of each module that has any, by module id."""
    return _settings_by_module(reader.rows(_SETTINGS_OF_COURSE_READ, {"course_id": course_id}))


def _settings_by_module(rows: Iterable[Sequence[Any]]) -> dict[str, Settings]:
    return {found.module_id: found for found in map(Settings.of, rows)}


def course_modules(reader: Direct, catalog: Catalog, ts: ToolSession) -> list[ModulePage]:
    return course_modules_of(catalog, ts, reader.batch(*course_modules_reads(ts)))


def course_modules_reads(ts: ToolSession) -> list[tuple[Prepared, dict[str, Any]]]:
    """What `course_modules_of` reads, for a caller that sends it with reads of its own
    (`Direct.batch`): the course's module settings and the reader's progress."""
    return [
        (_SETTINGS_OF_COURSE_READ, {"course_id": ts.course_id}),
        (_PROGRESS_OF_MEMBER_READ, {"member_id": ts.member_id}),
    ]


def course_modules_of(
    catalog: Catalog, ts: ToolSession, rows: Sequence[Sequence[Sequence[Any]]]
) -> list[ModulePage]:
    """Every module's page, from the rows of `course_modules_reads`."""
    settings_rows, progress_rows = rows
    settings = _settings_by_module(settings_rows)
    progress = _progress_by_unit(progress_rows)
    return [
        _module_page(module, settings.get(module.id), progress, ts) for module in catalog.modules
    ]


@dataclass(frozen=True)
class Video:
    kind: str  # "iframe", "video" or "link"
    src: str


_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{6,20}$")
VIDEO_FRAME_ORIGINS = ("https://www.youtube-nocookie.com", "https://player.vimeo.com")


def video_for(url: str | None) -> Video | None:
    """How to show a lecture video: an embedded player for YouTube and Vimeo, a <video> for a
    file, else a link (the tool never frames an arbitrary page)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.").removeprefix("m.")
    video_id = None
    if host == "youtube.com" and parts.path == "/watch":
        video_id = parse_qs(parts.query).get("v", [""])[0]
    elif host == "youtu.be":
        video_id = parts.path.strip("/")
    elif host in ("youtube.com", "youtube-nocookie.com") and parts.path.startswith("/embed/"):
        video_id = parts.path.removeprefix("/embed/")
    if video_id and _YOUTUBE_ID.match(video_id):
        return Video("iframe", f"https://www.youtube-nocookie.com/embed/{video_id}")
    if host == "vimeo.com" and parts.path.strip("/").isdigit():
        return Video("iframe", f"https://player.vimeo.com/video/{parts.path.strip('/')}")
    if parts.scheme == "https" and parts.path.lower().endswith((".mp4", ".webm")):
        return Video("video", url)
    return Video("link", url)


@dataclass(frozen=True)
class UnitPage:
    module: ModulePage
    unit: Unit
    progress: Progress
    previous: Unit | None
    next: Unit | None
    video: Video | None
    position: int


def open_unit(
    conn: Direct, catalog: Catalog, ts: ToolSession, module_id: str, unit_id: str
) -> tuple[UnitPage, ReadingAids]:
    """The unit's page and the reader's aids, read in one statement, and the visit recorded in
    a short write of its own. Nothing is recorded for a unit that does not exist or is not
    open yet."""
    module = _module(catalog, module_id)
    rows = conn.rows(
        _UNIT_PAGE_READ,
        {
            "person_id": ts.person_id,
            "platform_id": ts.platform_id,
            "course_id": ts.course_id,
            "member_id": ts.member_id,
            "module_id": module.id,
        },
    )
    if not rows:
        raise NotFound("person not found")
    first = rows[0]
    aids = ReadingAids(bool(first[0]), bool(first[1]))
    settings = _settings_of(first[_SETTINGS_AT:_PROGRESS_AT])
    progress = {
        row[_PROGRESS_UNIT]: Progress(*row[_PROGRESS_AT:])
        for row in rows
        if row[_PROGRESS_AT] is not None
    }
    page = _module_page(module, settings, progress, ts)
    if not page.is_open:
        opens = page.settings.opens_at if page.settings else None
        raise NotFound(
            _l("This module opens on %(date)s.", date=format_date(opens) if opens else "?"),
            log_detail="module not open yet",
        )
    unit = _unit(page.module, unit_id)
    with conn.writing():
        seen = _note_open(conn, ts, page.module.id, unit.id, progress.get(unit.id))
    units = [status.unit for status in page.units]
    index = units.index(unit)
    configured = page.settings.video_urls.get(unit.id) if page.settings else None
    unit_page = UnitPage(
        module=page,
        unit=unit,
        progress=seen,
        previous=units[index - 1] if index > 0 else None,
        next=units[index + 1] if index + 1 < len(units) else None,
        video=video_for(configured or unit.video_url),
        position=index + 1,
    )
    return unit_page, aids


_SEEN = Prepared(
    update(_PROGRESS_TABLE)
    .where(_PROGRESS_TABLE.c.id == bindparam("progress_id"))
    .values(last_seen_at=bindparam("now", type_=_PROGRESS_TABLE.c.last_seen_at.type))
)


@per_dialect
def _opened_statement(insert: Callable[..., Any]) -> Any:
    now = bindparam("now", type_=_PROGRESS_TABLE.c.opened_at.type)
    return (
        insert(_PROGRESS_TABLE)
        .values(
            course_id=bindparam("course_id"),
            member_id=bindparam("member_id"),
            module_id=bindparam("module_id"),
            unit_id=bindparam("unit_id"),
            opened_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_nothing(index_elements=["member_id", "unit_id"])
        .returning(_PROGRESS_TABLE.c.id)
    )


_OPENED = Prepared(_opened_statement)
_PROGRESS_OF_UNIT = Prepared(
    _PROGRESS_OF_MEMBER.where(_PROGRESS_TABLE.c.unit_id == bindparam("unit_id"))
)


def _note_open(
    conn: Direct,
    ts: ToolSession,
    module_id: str,
    unit_id: str,
    known: Progress | None,
) -> Progress:
    """Record that the reader opened a unit, in one statement: the page's progress (to show;
    changes to it are not saved)."""
    now = utcnow()
    if known is not None:
        conn.rows(_SEEN, {"progress_id": known.id, "now": now})
        known.last_seen_at = now
        return known
    values = {
        "course_id": ts.course_id,
        "member_id": ts.member_id,
        "module_id": module_id,
        "unit_id": unit_id,
        "now": now,
    }
    inserted = conn.first(_OPENED, values)
    if inserted is None:
        # The same reader opened it in another tab at the same moment: theirs stands.
        row = conn.first(_PROGRESS_OF_UNIT, {"member_id": ts.member_id, "unit_id": unit_id})
        if row is None:
            raise RuntimeError("unit progress neither inserted nor found")
        return Progress(*row)
    return Progress(inserted[0], module_id, unit_id, opened_at=now, last_seen_at=now)


def _record_open(session: Session, ts: ToolSession, module_id: str, unit_id: str) -> UnitProgress:
    """The reader's progress row for a unit, created if new, in `session` to be changed."""
    query = select(UnitProgress).where(
        UnitProgress.member_id == ts.member_id, UnitProgress.unit_id == unit_id
    )
    row = session.scalars(query).first()
    now = utcnow()
    if row is not None:
        row.last_seen_at = now
        return row
    # Another tab may insert it at the same moment: the upsert leaves one row either way.
    conn = session.connection()
    conn.execute(
        _opened_statement(conn.dialect.name),
        {
            "course_id": ts.course_id,
            "member_id": ts.member_id,
            "module_id": module_id,
            "unit_id": unit_id,
            "now": now,
        },
    )
    return session.scalars(query).one()


def mark_read(
    session: Session, catalog: Catalog, ts: ToolSession, module_id: str, unit_id: str
) -> None:
    module = _module(catalog, module_id)
    _unit(module, unit_id)
    row = _record_open(session, ts, module.id, unit_id)
    if row.read_at is None:
        row.read_at = utcnow()
    session.flush()


@dataclass(frozen=True)
class CheckResult:
    correct: int
    total: int


def submit_self_check(
    session: Session,
    catalog: Catalog,
    ts: ToolSession,
    module_id: str,
    unit_id: str,
    form: Mapping[str, str],
) -> CheckResult:
    page = module_page(session, catalog, ts, module_id)
    unit = _unit(page.module, unit_id)
    answers: dict[str, int] = {}
    for question in unit.self_check:
        raw = form.get(question.id, "")
        if not raw.isdigit() or int(raw) >= len(question.options):
            raise BadRequest(_l("Answer every question before checking."))
        answers[question.id] = int(raw)
    correct = sum(1 for q in unit.self_check if answers[q.id] == q.answer)
    row = _record_open(session, ts, page.module.id, unit.id)
    now = utcnow()
    row.read_at = row.read_at or now
    row.checked_at = now
    row.check_correct, row.check_total, row.check_answers = correct, len(unit.self_check), answers
    session.flush()
    _send_completion(session, catalog, ts, page.module.id)
    return CheckResult(correct, len(unit.self_check))


def _send_completion(session: Session, catalog: Catalog, ts: ToolSession, module_id: str) -> None:
    """When the instructor turned it on, the module's completion goes to every gradebook column
    of an activity that shows this module."""
    if ts.is_staff:
        return
    settings = settings_for(session, ts.course_id, module_id)
    if settings is None or not settings.send_completion_grade:
        return
    page = module_page(session, catalog, ts, module_id)
    member = session.get(Member, ts.member_id)
    assert member is not None
    links = session.scalars(
        select(ResourceLink)
        .join(ResourceLinkPlacement, ResourceLinkPlacement.resource_link_pk == ResourceLink.id)
        .join(Placement, Placement.id == ResourceLinkPlacement.placement_id)
        .where(ResourceLink.course_id == ts.course_id, Placement.item_key == module_key(module_id))
    )
    for link in links:
        item = grading.grade_item_for(session, link, gradable_for(page.module))
        grading.record_score(
            session,
            member,
            item,
            page.percent,
            100,
            grading.Progress.FINAL,
            only_if_changed=True,
        )


def enable_completion_grade(session: Session, course_id: int, module_id: str) -> None:
    """A module placed as a graded LMS activity sends its completion there (the instructor can
    turn it off in the module settings)."""
    settings = settings_for(session, course_id, module_id)
    if settings is None:
        settings = ModuleSettings(course_id=course_id, module_id=module_id)
        session.add(settings)
    settings.send_completion_grade = True
    session.flush()


def gradable_for(module: Module) -> grading.Gradable:
    return grading.Gradable(
        key=module_key(module.id),
        label=module.title.plain("ja"),
        score_maximum=100,
        tag="module-completion",
    )


def set_reading_aids(
    session: Session, ts: ToolSession, *, furigana: bool | None, easy: bool | None
) -> Person:
    person = session.scalars(
        select(Person).where(Person.id == ts.person_id, Person.platform_id == ts.platform_id)
    ).first()
    if person is None:
        raise NotFound("person not found")
    if furigana is not None:
        person.show_furigana = furigana
    if easy is not None:
        person.easy_japanese = easy
    session.flush()
    return person


@dataclass(frozen=True)
class ReadingAids:
    """The reader's own aids for Japanese text."""

    show_furigana: bool
    easy_japanese: bool


_PERSON = cast(Table, Person.__table__)
_AIDS_OF_PERSON = select(_PERSON.c.show_furigana, _PERSON.c.easy_japanese).where(
    _PERSON.c.id == bindparam("person_id"), _PERSON.c.platform_id == bindparam("platform_id")
)


# Everything a unit page reads, in one statement (one round trip, one snapshot): the reader's
# aids, the course's settings for the module (NULLs when it has none) and the reader's progress
# in the module (a row per unit; NULLs when none). The person's row anchors it: scoped to the
# session's platform, and no row at all for a session naming a person that is not there.
_UNIT_PAGE_SETTINGS = _columns_of(_SETTINGS_TABLE, Settings)
_UNIT_PAGE_READ = Prepared(
    select(
        _PERSON.c.show_furigana,
        _PERSON.c.easy_japanese,
        *_UNIT_PAGE_SETTINGS,
        *_PROGRESS_COLUMNS,
    )
    .select_from(
        _PERSON.outerjoin(
            _SETTINGS_TABLE,
            and_(
                _SETTINGS_TABLE.c.course_id == bindparam("course_id"),
                _SETTINGS_TABLE.c.module_id == bindparam("module_id"),
            ),
        ).outerjoin(
            _PROGRESS_TABLE,
            and_(
                _PROGRESS_TABLE.c.member_id == bindparam("member_id"),
                _PROGRESS_TABLE.c.module_id == bindparam("module_id"),
            ),
        )
    )
    .where(
        _PERSON.c.id == bindparam("person_id"), _PERSON.c.platform_id == bindparam("platform_id")
    )
)
_SETTINGS_AT = 2
_PROGRESS_AT = _SETTINGS_AT + len(_UNIT_PAGE_SETTINGS)
_PROGRESS_UNIT = _PROGRESS_AT + _UNIT_ID_AT


def _settings_of(values: tuple[Any, ...]) -> Settings | None:
    """Settings from the unit page's row (all NULL where the course has none)."""
    # module_id is never NULL in a row of settings.
    return Settings.of(values) if values[0] is not None else None


_AIDS_READ = Prepared(_AIDS_OF_PERSON)


def reading_aids(reader: Direct, ts: ToolSession) -> ReadingAids:
    row = reader.first(_AIDS_READ, {"person_id": ts.person_id, "platform_id": ts.platform_id})
    if row is None:
        raise NotFound("person not found")
    return ReadingAids(bool(row[0]), bool(row[1]))


# --- instructors ------------------------------------------------------------------------------


def format_date(moment: dt.datetime) -> str:
    return moment.astimezone(TOKYO).strftime("%Y-%m-%d")


def _parse_date(raw: str, label: str, *, end_of_day: bool) -> dt.datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(_l("%(label)s: give a date like 2026-04-01.", label=label)) from None
    clock = dt.time(23, 59, 59) if end_of_day else dt.time(0, 0)
    return dt.datetime.combine(day, clock, tzinfo=TOKYO).astimezone(dt.UTC)


def save_settings(
    session: Session,
    catalog: Catalog,
    ts: ToolSession,
    module_id: str,
    form: Mapping[str, str],
    required: list[str],
) -> ModuleSettings:
    module = _module(catalog, module_id)
    unit_ids = [unit.id for unit in module.units]
    positions: dict[str, int] = {}
    videos: dict[str, str] = {}
    for index, unit_id in enumerate(unit_ids):
        raw_position = form.get(f"position:{unit_id}", "").strip()
        if raw_position and not raw_position.isdigit():
            raise BadRequest(_l("Positions are whole numbers."))
        positions[unit_id] = int(raw_position) if raw_position else index + 1
        video = form.get(f"video:{unit_id}", "").strip()
        if video:
            if not video.startswith("https://") or len(video) > 2048:
                raise BadRequest(_l("Video addresses must start with https://."))
            videos[unit_id] = video
    unknown = set(required) - set(unit_ids)
    if unknown:
        raise BadRequest(_l("Unknown unit."), log_detail=f"unknown units {sorted(unknown)[:3]}")
    note = form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        raise BadRequest(_l("The note is too long (at most %(n)s characters).", n=MAX_NOTE))
    opens = _parse_date(form.get("opens", ""), str(_l("Opening date")), end_of_day=False)
    due = _parse_date(form.get("due", ""), str(_l("Due date")), end_of_day=True)
    if opens and due and due < opens:
        raise BadRequest(_l("The due date is before the opening date."))
    settings = settings_for(session, ts.course_id, module.id)
    if settings is None:
        settings = ModuleSettings(course_id=ts.course_id, module_id=module.id)
        session.add(settings)
    settings.unit_order = sorted(unit_ids, key=lambda uid: (positions[uid], unit_ids.index(uid)))
    settings.required_units = sorted(set(required), key=unit_ids.index)
    settings.video_urls = videos
    settings.opens_at, settings.due_at = opens, due
    settings.note = note or None
    settings.send_completion_grade = form.get("send_grade") == "on"
    settings.updated_by_member_id = ts.member_id
    session.flush()
    return settings


@dataclass(frozen=True)
class ProgressRow:
    member: Member
    states: dict[str, str]
    percent: int


@dataclass(frozen=True)
class ModuleReport:
    module: Module
    units: list[Unit]
    required: set[str]
    rows: list[ProgressRow]

    def completed_share(self, unit_id: str) -> int:
        if not self.rows:
            return 0
        done = sum(1 for row in self.rows if row.states[unit_id] == "completed")
        return round(100 * done / len(self.rows))

    @property
    def not_started(self) -> int:
        return sum(1 for row in self.rows if all(s == "not_started" for s in row.states.values()))


def learners(session: Session, course_id: int) -> list[Member]:
    members = session.scalars(
        select(Member)
        .options(joinedload(Member.person))
        .where(Member.course_id == course_id, Member.active.is_(True))
        .order_by(Member.id)
    )
    return [m for m in members if not has_staff_rights(decode_roles(m.roles))]


def progress_reports(session: Session, catalog: Catalog, course_id: int) -> list[ModuleReport]:
    people = learners(session, course_id)
    progress: dict[tuple[int, str], Progress] = {
        (row[0], row.unit_id): Progress(*row[1:])
        for row in session.connection().execute(
            select(_PROGRESS_TABLE.c.member_id, *_PROGRESS_COLUMNS).where(
                _PROGRESS_TABLE.c.course_id == course_id
            )
        )
    }
    settings = _course_settings(Direct.within(session), course_id)
    reports = []
    for module in catalog.modules:
        chosen = settings.get(module.id)
        units = ordered_units(module, chosen)
        required = required_ids(module, chosen)
        rows = []
        for member in people:
            states = {
                unit.id: UnitStatus(
                    unit, unit.id in required, progress.get((member.id, unit.id))
                ).state
                for unit in units
            }
            done = sum(1 for uid in required if states[uid] == "completed")
            rows.append(
                ProgressRow(member, states, round(100 * done / len(required)) if required else 100)
            )
        reports.append(ModuleReport(module, units, required, rows))
    return reports


STATE_LABELS = {
    "not_started": _l("not started"),
    "opened": _l("opened"),
    "read": _l("read"),
    "completed": _l("completed"),
}


def progress_csv(reports: list[ModuleReport], locale: str) -> str:
    """UTF-8 with a byte order mark, so Excel opens the Japanese correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            str(_l("Module")),
            str(_l("Unit")),
            str(_l("Trainee")),
            str(_l("State")),
            str(_l("Required")),
        ]
    )
    for report in reports:
        for row in report.rows:
            name = row.member.person.display_name or row.member.person.sub
            for unit in report.units:
                writer.writerow(
                    [
                        report.module.id,
                        unit.title.plain(locale),
                        _csv_safe(name),
                        str(STATE_LABELS[row.states[unit.id]]),
                        "yes" if unit.id in report.required else "no",
                    ]
                )
    return "\ufeff" + out.getvalue()


def _csv_safe(value: str) -> str:
    """Names come from the LMS: never let a spreadsheet read one as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
