"""The completion test: settings, attempts (drawn, timed, saved, submitted once), review,
results and statistics, regrading, accommodations, and the grade to the LMS.

Scoring happens here only; pages never carry the answer key before review is allowed.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from lti_tool.catalog.model import Catalog
from lti_tool.catalog.quizbank import AREAS, Question, question_snapshot
from lti_tool.db import per_dialect, utcnow
from lti_tool.errors import BadRequest, Conflict, Forbidden, NotFound
from lti_tool.grading import services as grading
from lti_tool.identity.models import Member, ResourceLink
from lti_tool.linking.models import Placement, ResourceLinkPlacement
from lti_tool.quiz.models import (
    Accommodation,
    Attempt,
    AttemptAnswer,
    AttemptStatus,
    GradingRule,
    QuizSettings,
    ReviewPolicy,
)
from lti_tool.quiz.scoring import is_answered, score_response
from lti_tool.web.session import ToolSession

QUIZ_KEY = "quiz:final"
GRACE = dt.timedelta(seconds=30)
DEFAULT_PER_AREA = 8
MAX_SHORT_ANSWER = 500
_random = random.SystemRandom()


# --- settings ---------------------------------------------------------------------------------


def default_settings(catalog: Catalog, course_id: int) -> QuizSettings:
    available = _bank_by_area(catalog)
    return QuizSettings(
        course_id=course_id,
        questions_per_area={area: min(DEFAULT_PER_AREA, len(available[area])) for area in AREAS},
        shuffle_questions=True,
        shuffle_options=True,
        time_limit_minutes=60,
        attempts_allowed=2,
        pass_percent=70,
        grading_rule=GradingRule.BEST,
        review_policy=ReviewPolicy.AFTER_CLOSE,
        questions_per_page=5,
        opens_at=None,
        closes_at=None,
    )


def settings_for(session: Session, catalog: Catalog, course_id: int) -> QuizSettings:
    found = session.scalars(select(QuizSettings).where(QuizSettings.course_id == course_id)).first()
    return found if found is not None else default_settings(catalog, course_id)


def _bank_by_area(catalog: Catalog) -> dict[str, list[Question]]:
    by_area: dict[str, list[Question]] = {area: [] for area in AREAS}
    for question in catalog.questions.values():
        by_area[question.area].append(question)
    return by_area


def _int_field(form: Mapping[str, str], name: str, low: int, high: int, label: Any) -> int:
    raw = form.get(name, "").strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(
            _l(
                "%(label)s: a whole number from %(low)s to %(high)s.",
                label=label,
                low=low,
                high=high,
            )
        )
    return int(raw)


def save_settings(
    session: Session, catalog: Catalog, ts: ToolSession, form: Mapping[str, str]
) -> QuizSettings:
    from lti_tool.modules.services import _parse_date  # one date rule for the whole tool

    available = _bank_by_area(catalog)
    per_area = {
        area: _int_field(
            form,
            f"area:{area}",
            0,
            len(available[area]),
            _l("Questions from area %(area)s", area=area),
        )
        for area in AREAS
    }
    if sum(per_area.values()) == 0:
        raise BadRequest(_l("The test needs at least one question."))
    try:
        grading_rule = GradingRule(form.get("grading_rule", ""))
        review_policy = ReviewPolicy(form.get("review_policy", ""))
    except ValueError:
        raise BadRequest(_l("Choose a grading rule and a review policy.")) from None
    opens = _parse_date(form.get("opens", ""), str(_l("Opening date")), end_of_day=False)
    closes = _parse_date(form.get("closes", ""), str(_l("Closing date")), end_of_day=True)
    if opens and closes and closes <= opens:
        raise BadRequest(_l("The closing date is before the opening date."))
    settings = session.scalars(
        select(QuizSettings).where(QuizSettings.course_id == ts.course_id)
    ).first()
    if settings is None:
        settings = QuizSettings(course_id=ts.course_id)
        session.add(settings)
    settings.questions_per_area = per_area
    settings.shuffle_questions = form.get("shuffle_questions") == "on"
    settings.shuffle_options = form.get("shuffle_options") == "on"
    settings.time_limit_minutes = _int_field(form, "time_limit", 5, 600, _l("Time limit (minutes)"))
    settings.attempts_allowed = _int_field(form, "attempts", 1, 20, _l("Attempts allowed"))
    settings.pass_percent = _int_field(form, "pass_percent", 1, 100, _l("Pass mark (percent)"))
    settings.questions_per_page = _int_field(form, "per_page", 1, 50, _l("Questions per page"))
    settings.grading_rule, settings.review_policy = grading_rule, review_policy
    settings.opens_at, settings.closes_at = opens, closes
    settings.updated_by_member_id = ts.member_id
    session.flush()
    return settings


def apply_placement_options(
    session: Session, catalog: Catalog, course_id: int, options: Mapping[str, Any]
) -> None:
    """The pass mark chosen in the deep-linking picker becomes the course's pass mark."""
    pass_percent = options.get("pass_percent")
    if not isinstance(pass_percent, int):
        return
    settings = session.scalars(
        select(QuizSettings).where(QuizSettings.course_id == course_id)
    ).first()
    if settings is None:
        settings = default_settings(catalog, course_id)
        session.add(settings)
    settings.pass_percent = pass_percent
    session.flush()


# --- attempts ---------------------------------------------------------------------------------


def _accommodation(session: Session, course_id: int, member_id: int) -> tuple[int, int]:
    row = session.execute(
        select(
            func.coalesce(func.sum(Accommodation.extra_minutes), 0),
            func.coalesce(func.sum(Accommodation.extra_attempts), 0),
        ).where(Accommodation.course_id == course_id, Accommodation.member_id == member_id)
    ).one()
    return int(row[0]), int(row[1])


def _window_state(settings: QuizSettings, now: dt.datetime) -> str:
    if settings.opens_at and now < settings.opens_at:
        return "not_open"
    if settings.closes_at and now >= settings.closes_at:
        return "closed"
    return "open"


@dataclass(frozen=True)
class RulesPage:
    settings: QuizSettings
    question_count: int
    attempts: list[Attempt]
    attempts_allowed: int
    extra_minutes: int
    open_attempt: Attempt | None
    state: str
    can_review: bool

    @property
    def attempts_left(self) -> int:
        return max(0, self.attempts_allowed - len(self.attempts))

    @property
    def can_start(self) -> bool:
        return self.open_attempt is not None or (
            self.state == "open" and self.attempts_left > 0 and self.question_count > 0
        )


def _member_attempts(session: Session, ts: ToolSession) -> list[Attempt]:
    return list(
        session.scalars(
            select(Attempt)
            .where(Attempt.course_id == ts.course_id, Attempt.member_id == ts.member_id)
            .order_by(Attempt.number)
        )
    )


def rules_page(session: Session, catalog: Catalog, ts: ToolSession) -> RulesPage:
    close_expired(session, catalog, ts.course_id, member_id=ts.member_id)
    settings = settings_for(session, catalog, ts.course_id)
    extra_minutes, extra_attempts = _accommodation(session, ts.course_id, ts.member_id)
    attempts = _member_attempts(session, ts)
    now = utcnow()
    return RulesPage(
        settings=settings,
        question_count=sum(settings.questions_per_area.values()),
        attempts=attempts,
        attempts_allowed=settings.attempts_allowed + extra_attempts,
        extra_minutes=extra_minutes,
        open_attempt=next((a for a in attempts if a.status == AttemptStatus.OPEN), None),
        state=_window_state(settings, now),
        can_review=review_allowed(settings, ts, now),
    )


def review_allowed(settings: QuizSettings, ts: ToolSession, now: dt.datetime | None = None) -> bool:
    if ts.is_staff or settings.review_policy == ReviewPolicy.IMMEDIATELY:
        return True
    if settings.review_policy == ReviewPolicy.AFTER_CLOSE:
        return settings.closes_at is not None and (now or utcnow()) >= settings.closes_at
    return False


def _draw(catalog: Catalog, settings: QuizSettings) -> list[dict[str, Any]]:
    by_area = _bank_by_area(catalog)
    drawn: list[Question] = []
    for area in AREAS:
        pool = sorted(by_area[area], key=lambda q: q.id)
        count = min(settings.questions_per_area.get(area, 0), len(pool))
        chosen = _random.sample(pool, count)
        drawn.extend(chosen if settings.shuffle_questions else sorted(chosen, key=lambda q: q.id))
    if settings.shuffle_questions:
        _random.shuffle(drawn)
    entries = []
    for question in drawn:
        if question.type in ("single", "multiple"):
            order = list(range(len(question.options)))
            if settings.shuffle_options:
                _random.shuffle(order)
        elif question.type == "matching":
            # The right-hand side is always shuffled, or matching would be trivial.
            order = list(range(len(question.pairs)))
            while len(order) > 1 and order == sorted(order):
                _random.shuffle(order)
        else:
            order = []
        entries.append(
            {
                "id": question.id,
                "version": question.version,
                "snapshot": question_snapshot(question),
                "order": order,
            }
        )
    return entries


def start_attempt(session: Session, catalog: Catalog, ts: ToolSession) -> Attempt:
    """Resume the open attempt, or start a new one if the rules allow."""
    if ts.is_staff:
        raise Forbidden(_l("Instructors see the test's results, not an attempt of their own."))
    page = rules_page(session, catalog, ts)
    if page.open_attempt is not None:
        return page.open_attempt
    if page.state == "not_open":
        raise Conflict(_l("The test is not open yet."))
    if page.state == "closed":
        raise Conflict(_l("The test has closed."))
    if page.attempts_left <= 0:
        raise Conflict(_l("You have no attempts left."))
    if page.question_count == 0:
        raise Conflict(_l("The test has no questions yet."))
    settings = page.settings
    now = utcnow()
    deadline = now + dt.timedelta(minutes=settings.time_limit_minutes + page.extra_minutes)
    if settings.closes_at is not None:
        deadline = min(deadline, settings.closes_at)
    attempt = Attempt(
        course_id=ts.course_id,
        member_id=ts.member_id,
        number=len(page.attempts) + 1,
        status=AttemptStatus.OPEN,
        started_at=now,
        deadline_at=deadline,
        questions=_draw(catalog, settings),
        pass_percent=settings.pass_percent,
    )
    try:
        with session.begin_nested():
            session.add(attempt)
    except IntegrityError:
        # Started at the same moment in another tab: both continue the one open attempt.
        existing = session.scalars(
            select(Attempt).where(
                Attempt.member_id == ts.member_id, Attempt.status == AttemptStatus.OPEN
            )
        ).first()
        if existing is None:
            raise
        return existing
    return attempt


def attempt_for(
    session: Session, ts: ToolSession, attempt_id: int, *, staff_may: bool = False
) -> Attempt:
    """An attempt of this member in this course (staff may read any of the course's)."""
    query = select(Attempt).where(Attempt.id == attempt_id, Attempt.course_id == ts.course_id)
    if not (staff_may and ts.is_staff):
        query = query.where(Attempt.member_id == ts.member_id)
    attempt = session.scalars(query).first()
    if attempt is None:
        raise NotFound(_l("This attempt does not exist."))
    return attempt


def answers_of(session: Session, attempt: Attempt) -> dict[str, AttemptAnswer]:
    return {
        row.question_id: row
        for row in session.scalars(
            select(AttemptAnswer).where(AttemptAnswer.attempt_id == attempt.id)
        )
    }


def is_late(attempt: Attempt, now: dt.datetime | None = None) -> bool:
    return (now or utcnow()) > attempt.deadline_at + GRACE


def _parse_response(snapshot: dict[str, Any], raw: Mapping[str, Any], qid: str) -> Any:
    """The stored form of a response from form fields named after the question id."""
    kind = snapshot["type"]
    if kind == "single":
        value = raw.get(qid, "")
        return int(value) if value.isdigit() and int(value) < len(snapshot["options"]) else None
    if kind == "truefalse":
        value = raw.get(qid)
        return {"true": True, "false": False}.get(value or "")
    if kind == "multiple":
        values = raw.get(f"{qid}[]") or []
        chosen = sorted(
            {int(v) for v in values if v.isdigit() and int(v) < len(snapshot["options"])}
        )
        return chosen or None
    if kind == "matching":
        pairs = len(snapshot["pairs"])
        result = {}
        for left in range(pairs):
            value = raw.get(f"{qid}:{left}", "")
            if value.isdigit() and int(value) < pairs:
                result[str(left)] = int(value)
        return result or None
    if kind == "short":
        value = raw.get(qid, "")
        return value.strip()[:MAX_SHORT_ANSWER] or None
    return None


@dataclass(frozen=True)
class SaveOutcome:
    saved: int
    late: bool


def save_answers(
    session: Session,
    catalog: Catalog,
    ts: ToolSession,
    attempt_id: int,
    fields: Mapping[str, Any],
    flagged: Sequence[str] | None,
    question_ids: Sequence[str],
) -> SaveOutcome:
    """Save the given questions' responses (and flags). Questions not in the attempt are
    ignored. Past the deadline nothing is saved: the attempt is submitted with what it had."""
    # A lean read (no ORM object, and the drawn questions only once per worker and attempt):
    # this runs at every answer a trainee gives.
    condition = (
        (Attempt.id == attempt_id)
        & (Attempt.course_id == ts.course_id)
        & (Attempt.member_id == ts.member_id)
    )
    attempt = session.execute(
        select(Attempt.id, Attempt.status, Attempt.deadline_at, Attempt.started_at).where(condition)
    ).first()
    if attempt is None:
        raise NotFound(_l("This attempt does not exist."))
    if attempt.status != AttemptStatus.OPEN:
        raise Conflict(_l("This attempt was already submitted."))
    if utcnow() > attempt.deadline_at + GRACE:
        finish_attempt(session, catalog, attempt_for(session, ts, attempt_id), auto=True)
        return SaveOutcome(0, late=True)
    # Keyed by id and start: a database that hands an id out again never gets another's shapes.
    key = (attempt.id, attempt.started_at)
    snapshots = _ANSWER_SHAPES.get(key)
    if snapshots is None:
        questions = session.scalar(select(Attempt.questions).where(condition))
        snapshots = _remember_shapes(key, questions or [])
    now = utcnow()
    rows = [
        {
            "attempt_id": attempt.id,
            "question_id": qid,
            "response": _parse_response(snapshots[qid], fields, qid),
            "flagged": flagged is not None and qid in flagged,
            "saved_at": now,
        }
        for qid in dict.fromkeys(question_ids)
        if qid in snapshots
    ]
    if rows:
        _upsert_answers(session, rows, keep_flags=flagged is None)
    return SaveOutcome(len(rows), late=False)


# What parsing an answer needs of each drawn question (type, number of options and pairs), by
# open attempt. An open attempt's questions never change (regrading touches submitted ones).
_ANSWER_SHAPES: OrderedDict[tuple[int, dt.datetime], dict[str, dict[str, Any]]] = OrderedDict()
_SHAPES_KEPT = 2000


def _remember_shapes(
    key: tuple[int, dt.datetime], questions: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    shapes = {
        entry["id"]: {
            "type": entry["snapshot"]["type"],
            "options": [None] * len(entry["snapshot"].get("options", [])),
            "pairs": [None] * len(entry["snapshot"].get("pairs", [])),
        }
        for entry in questions
    }
    _ANSWER_SHAPES[key] = shapes
    while len(_ANSWER_SHAPES) > _SHAPES_KEPT:
        _ANSWER_SHAPES.popitem(last=False)
    return shapes


def _answer_upsert(keep_flags: bool) -> Callable[[Callable[..., Any]], Any]:
    def build(insert: Callable[..., Any]) -> Any:
        statement = insert(AttemptAnswer)
        changes = {"response": statement.excluded.response, "saved_at": statement.excluded.saved_at}
        if not keep_flags:
            changes["flagged"] = statement.excluded.flagged
        return statement.on_conflict_do_update(
            index_elements=["attempt_id", "question_id"], set_=changes
        )

    return build


# Insert-or-update of one answer, built once per dialect (it runs at every answer).
_UPSERT_KEEPING_FLAGS = per_dialect(_answer_upsert(keep_flags=True))
_UPSERT = per_dialect(_answer_upsert(keep_flags=False))


def _upsert_statement(dialect: str, keep_flags: bool) -> Any:
    return (_UPSERT_KEEPING_FLAGS if keep_flags else _UPSERT)(dialect)


def _upsert_answers(session: Session, rows: list[dict[str, Any]], *, keep_flags: bool) -> None:
    """Insert or update the answers (an answer is saved at every change)."""
    statement = _upsert_statement(session.get_bind().dialect.name, keep_flags)
    session.execute(statement, rows)


def finish_attempt(session: Session, catalog: Catalog, attempt: Attempt, *, auto: bool) -> bool:
    """Submit and grade once: True if this call did it, False if it was already submitted."""
    now = utcnow()
    result = session.execute(
        update(Attempt)
        .where(Attempt.id == attempt.id, Attempt.status == AttemptStatus.OPEN)
        .values(
            status=AttemptStatus.SUBMITTED,
            submitted_at=min(now, attempt.deadline_at + GRACE),
            auto_submitted=auto,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(attempt)
        return False
    session.refresh(attempt)
    _grade(session, attempt)
    _send_grade(session, attempt.course_id, attempt.member_id)
    return True


def submit(
    session: Session, catalog: Catalog, ts: ToolSession, attempt_id: int
) -> tuple[Attempt, bool]:
    """A trainee's submit. Returns the attempt and whether it came after the deadline (then
    only the answers saved in time count)."""
    attempt = attempt_for(session, ts, attempt_id)
    late = is_late(attempt)
    finish_attempt(session, catalog, attempt, auto=late)
    return attempt, late


def _grade(session: Session, attempt: Attempt) -> None:
    answers = answers_of(session, attempt)
    total = 0.0
    for entry in attempt.questions:
        row = answers.get(entry["id"])
        points = score_response(entry["snapshot"], row.response if row else None)
        if row is not None:
            row.points = points
        total += points
    count = len(attempt.questions)
    attempt.score = round(total, 4)
    attempt.max_score = float(count)
    attempt.percent = round(100 * total / count, 2) if count else 0.0
    attempt.passed = attempt.percent >= attempt.pass_percent
    session.flush()


def close_expired(
    session: Session, catalog: Catalog, course_id: int, *, member_id: int | None = None
) -> int:
    """Submit open attempts whose time is up, with the answers they saved."""
    query = select(Attempt).where(
        Attempt.course_id == course_id,
        Attempt.status == AttemptStatus.OPEN,
        Attempt.deadline_at < utcnow() - GRACE,
    )
    if member_id is not None:
        query = query.where(Attempt.member_id == member_id)
    closed = 0
    for attempt in session.scalars(query).all():
        closed += finish_attempt(session, catalog, attempt, auto=True)
    return closed


# --- the grade to the LMS ---------------------------------------------------------------------


def course_grade(attempts: Sequence[Attempt], rule: GradingRule) -> Attempt | None:
    graded = [a for a in attempts if a.status == AttemptStatus.SUBMITTED and a.percent is not None]
    if not graded:
        return None
    if rule == GradingRule.LAST:
        return max(graded, key=lambda a: a.number)
    return max(graded, key=lambda a: (a.percent or 0, -a.number))


def gradable() -> grading.Gradable:
    return grading.Gradable(
        key=QUIZ_KEY, label="修了認定テスト", score_maximum=100, tag="completion-test"
    )


def _send_grade(session: Session, course_id: int, member_id: int) -> None:
    """The course grade (best or last attempt) to every gradebook column of an activity that
    shows the test — exactly once per change (unchanged grades are not sent again)."""
    member = session.get(Member, member_id)
    settings = session.scalars(
        select(QuizSettings).where(QuizSettings.course_id == course_id)
    ).first()
    rule = settings.grading_rule if settings else GradingRule.BEST
    attempts = list(
        session.scalars(
            select(Attempt).where(Attempt.course_id == course_id, Attempt.member_id == member_id)
        )
    )
    chosen = course_grade(attempts, rule)
    if member is None or chosen is None:
        return
    links = session.scalars(
        select(ResourceLink)
        .join(ResourceLinkPlacement, ResourceLinkPlacement.resource_link_pk == ResourceLink.id)
        .join(Placement, Placement.id == ResourceLinkPlacement.placement_id)
        .where(ResourceLink.course_id == course_id, Placement.item_key == QUIZ_KEY)
    )
    comment = "合格 / Passed" if chosen.passed else "不合格 / Not passed"
    for link in links:
        item = grading.grade_item_for(session, link, gradable())
        grading.record_score(
            session,
            member,
            item,
            chosen.percent or 0.0,
            100,
            grading.Progress.FINAL,
            comment,
            only_if_changed=True,
        )


# --- review -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    number: int
    snapshot: dict[str, Any]
    order: list[int]
    response: Any
    points: float | None
    flagged: bool

    @property
    def answered(self) -> bool:
        return is_answered(self.snapshot, self.response)


def review_items(session: Session, attempt: Attempt) -> list[ReviewItem]:
    answers = answers_of(session, attempt)
    items = []
    for number, entry in enumerate(attempt.questions, start=1):
        row = answers.get(entry["id"])
        items.append(
            ReviewItem(
                number=number,
                snapshot=entry["snapshot"],
                order=entry["order"],
                response=row.response if row else None,
                points=row.points if row else None,
                flagged=bool(row and row.flagged),
            )
        )
    return items


def public_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A question as a page may show it during an attempt: no answer key, no explanation."""
    return {
        key: value
        for key, value in snapshot.items()
        if key not in ("answer", "accepted", "explanation")
    }


# --- instructors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionStats:
    question_id: str
    snapshot: dict[str, Any]
    responses: int
    facility: float | None
    discrimination: float | None
    option_shares: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ResultsPage:
    members: list[tuple[Member, list[Attempt], Attempt | None]]
    stats: list[QuestionStats]
    histogram: list[int]
    settings: QuizSettings
    accommodations: list[Accommodation]


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return round(statistics.correlation(xs, ys), 3)


def question_stats(session: Session, attempts: list[Attempt]) -> list[QuestionStats]:
    """Facility (mean points), discrimination (correlation of a question's points with the rest
    of the score), and the share choosing each option, over submitted attempts."""
    submitted = [a for a in attempts if a.status == AttemptStatus.SUBMITTED]
    if not submitted:
        return []
    rows = session.scalars(
        select(AttemptAnswer).where(AttemptAnswer.attempt_id.in_([a.id for a in submitted]))
    )
    by_attempt: dict[int, dict[str, AttemptAnswer]] = {}
    for row in rows:
        by_attempt.setdefault(row.attempt_id, {})[row.question_id] = row
    seen: dict[str, dict[str, Any]] = {}
    points: dict[str, list[tuple[float, float]]] = {}
    choices: dict[str, list[Any]] = {}
    for attempt in submitted:
        answers = by_attempt.get(attempt.id, {})
        for entry in attempt.questions:
            qid = entry["id"]
            seen.setdefault(qid, entry["snapshot"])
            answer = answers.get(qid)
            earned = answer.points if answer and answer.points is not None else 0.0
            points.setdefault(qid, []).append((earned, (attempt.score or 0.0) - earned))
            choices.setdefault(qid, []).append(answer.response if answer else None)
    stats = []
    for qid, snapshot in sorted(seen.items()):
        pairs = points[qid]
        shares: list[float] = []
        if snapshot["type"] in ("single", "multiple"):
            for option in range(len(snapshot["options"])):
                picked = sum(
                    1 for r in choices[qid] if r == option or (isinstance(r, list) and option in r)
                )
                shares.append(round(100 * picked / len(pairs), 1))
        stats.append(
            QuestionStats(
                question_id=qid,
                snapshot=snapshot,
                responses=len(pairs),
                facility=round(sum(p for p, _ in pairs) / len(pairs), 3),
                discrimination=_correlation([p for p, _ in pairs], [r for _, r in pairs]),
                option_shares=shares,
            )
        )
    return stats


def results_page(session: Session, catalog: Catalog, ts: ToolSession) -> ResultsPage:
    close_expired(session, catalog, ts.course_id)
    settings = settings_for(session, catalog, ts.course_id)
    from lti_tool.modules.services import learners

    attempts = list(
        session.scalars(
            select(Attempt)
            .where(Attempt.course_id == ts.course_id)
            .order_by(Attempt.member_id, Attempt.number)
        )
    )
    by_member: dict[int, list[Attempt]] = {}
    for attempt in attempts:
        by_member.setdefault(attempt.member_id, []).append(attempt)
    members = [
        (m, by_member.get(m.id, []), course_grade(by_member.get(m.id, []), settings.grading_rule))
        for m in learners(session, ts.course_id)
    ]
    histogram = [0] * 10
    for _, _, chosen in members:
        if chosen is not None and chosen.percent is not None:
            histogram[min(9, int(chosen.percent // 10))] += 1
    accommodations = list(
        session.scalars(
            select(Accommodation)
            .options(joinedload(Accommodation.member).joinedload(Member.person))
            .where(Accommodation.course_id == ts.course_id)
            .order_by(Accommodation.id)
        )
    )
    return ResultsPage(
        members=members,
        stats=question_stats(session, attempts),
        histogram=histogram,
        settings=settings,
        accommodations=accommodations,
    )


def regrade(session: Session, catalog: Catalog, ts: ToolSession) -> int:
    """Re-score submitted attempts whose questions changed in the bank since they were drawn
    (a corrected key); changed grades go to the LMS. Returns the attempts whose score changed."""
    changed = 0
    members: set[int] = set()
    attempts = session.scalars(
        select(Attempt).where(
            Attempt.course_id == ts.course_id, Attempt.status == AttemptStatus.SUBMITTED
        )
    )
    for attempt in attempts:
        entries = []
        touched = False
        for entry in attempt.questions:
            current = catalog.questions.get(entry["id"])
            if current is not None and current.version != entry["version"]:
                entry = {
                    **entry,
                    "version": current.version,
                    "snapshot": question_snapshot(current),
                }
                touched = True
            entries.append(entry)
        if not touched:
            continue
        before = attempt.score
        attempt.questions = entries
        attempt.regraded_at = utcnow()
        _grade(session, attempt)
        if attempt.score != before:
            changed += 1
            members.add(attempt.member_id)
    for member_id in members:
        _send_grade(session, ts.course_id, member_id)
    return changed


def grant_accommodation(
    session: Session, ts: ToolSession, member_id: int, form: Mapping[str, str]
) -> Accommodation:
    member = session.scalars(
        select(Member).where(Member.id == member_id, Member.course_id == ts.course_id)
    ).first()
    if member is None:
        raise NotFound(_l("This trainee is not in the course."))
    reason = form.get("reason", "").strip()
    if not reason or len(reason) > 1000:
        raise BadRequest(_l("Give the reason for the accommodation (up to 1000 characters)."))
    extra_minutes = _int_field(form, "extra_minutes", 0, 600, _l("Extra minutes"))
    extra_attempts = _int_field(form, "extra_attempts", 0, 10, _l("Extra attempts"))
    if extra_minutes == 0 and extra_attempts == 0:
        raise BadRequest(_l("Grant extra minutes, extra attempts, or both."))
    row = Accommodation(
        course_id=ts.course_id,
        member_id=member.id,
        extra_minutes=extra_minutes,
        extra_attempts=extra_attempts,
        reason=reason,
        granted_by_member_id=ts.member_id,
    )
    session.add(row)
    session.flush()
    return row
