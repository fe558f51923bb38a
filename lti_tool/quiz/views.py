"""The completion test: rules, attempt pages, summary, result; instructors' settings and results."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from lti_tool import runtime
from lti_tool.db import get_session, read_only
from lti_tool.errors import BadRequest, Conflict
from lti_tool.modules.services import format_date
from lti_tool.quiz import services
from lti_tool.quiz.models import AttemptStatus
from lti_tool.web.context import requires_session, requires_staff

bp = Blueprint("quiz", __name__, url_prefix="/quiz", template_folder="templates")


@bp.get("/")
@requires_session
def index() -> ResponseReturnValue:
    page = services.rules_page(get_session(), runtime.catalog(), g.tool_session)
    return render_template("quiz/rules.html", page=page)


@bp.post("/start")
@requires_session
def start() -> ResponseReturnValue:
    attempt = services.start_attempt(get_session(), runtime.catalog(), g.tool_session)
    return redirect(url_for("quiz.attempt", attempt_id=attempt.id), code=303)


def _page_number(count: int, per_page: int) -> int:
    raw = request.args.get("page", "1")
    pages = max(1, -(-count // per_page))
    return min(max(int(raw), 1), pages) if raw.isdigit() else 1


@bp.get("/attempt/<int:attempt_id>")
@requires_session
def attempt(attempt_id: int) -> ResponseReturnValue:
    session = get_session()
    ts = g.tool_session
    found = services.attempt_for(session, ts, attempt_id)
    if found.status != AttemptStatus.OPEN or services.is_late(found):
        if found.status == AttemptStatus.OPEN:
            services.finish_attempt(session, runtime.catalog(), found, auto=True)
        return redirect(url_for("quiz.result", attempt_id=found.id), code=303)
    settings = services.settings_for(session, runtime.catalog(), ts.course_id)
    per_page = settings.questions_per_page
    number = _page_number(len(found.questions), per_page)
    items = services.review_items(session, found)
    return render_template(
        "quiz/attempt.html",
        attempt=found,
        items=items,
        page=number,
        per_page=per_page,
        pages=max(1, -(-len(items) // per_page)),
        shown=items[(number - 1) * per_page : number * per_page],
    )


@bp.post("/attempt/<int:attempt_id>/save")
@requires_session
def save(attempt_id: int) -> ResponseReturnValue:
    session = get_session()
    question_ids = request.form.getlist("question")
    fields = {
        key: (request.form.getlist(key) if key.endswith("[]") else request.form[key])
        for key in request.form
    }
    outcome = services.save_answers(
        session,
        runtime.catalog(),
        g.tool_session,
        attempt_id,
        fields,
        request.form.getlist("flagged"),
        question_ids,
    )
    if outcome.late:
        return redirect(url_for("quiz.result", attempt_id=attempt_id, late=1), code=303)
    go = request.form.get("go", "")
    if go == "summary":
        return redirect(url_for("quiz.summary", attempt_id=attempt_id), code=303)
    page = go.removeprefix("page:")
    target: dict[str, Any] = {"page": page} if page.isdigit() else {}
    if request.headers.get("X-Requested-With") == "fetch":
        return {"status": "saved", "saved": outcome.saved}
    return redirect(url_for("quiz.attempt", attempt_id=attempt_id, **target), code=303)


@bp.get("/attempt/<int:attempt_id>/summary")
@requires_session
def summary(attempt_id: int) -> ResponseReturnValue:
    session = get_session()
    found = services.attempt_for(session, g.tool_session, attempt_id)
    if found.status != AttemptStatus.OPEN:
        return redirect(url_for("quiz.result", attempt_id=found.id), code=303)
    settings = services.settings_for(session, runtime.catalog(), g.tool_session.course_id)
    return render_template(
        "quiz/summary.html",
        attempt=found,
        items=services.review_items(session, found),
        per_page=settings.questions_per_page,
    )


@bp.post("/attempt/<int:attempt_id>/submit")
@requires_session
def submit(attempt_id: int) -> ResponseReturnValue:
    _, late = services.submit(get_session(), runtime.catalog(), g.tool_session, attempt_id)
    target: dict[str, Any] = {"late": 1} if late else {}
    return redirect(url_for("quiz.result", attempt_id=attempt_id, **target), code=303)


@bp.get("/attempt/<int:attempt_id>/result")
@requires_session
def result(attempt_id: int) -> ResponseReturnValue:
    session = get_session()
    ts = g.tool_session
    found = services.attempt_for(session, ts, attempt_id, staff_may=True)
    if found.status == AttemptStatus.OPEN:
        if not services.is_late(found):
            raise Conflict(_l("This attempt is still open."))
        services.finish_attempt(session, runtime.catalog(), found, auto=True)
    settings = services.settings_for(session, runtime.catalog(), ts.course_id)
    review = services.review_allowed(settings, ts)
    return render_template(
        "quiz/result.html",
        attempt=found,
        settings=settings,
        review=review,
        items=services.review_items(session, found) if review else [],
        late=request.args.get("late") == "1",
        sources=runtime.catalog().sources,
    )


@bp.route("/settings", methods=["GET", "POST"])
@requires_staff
def settings() -> ResponseReturnValue:
    session = get_session()
    catalog = runtime.catalog()
    if request.method == "POST":
        services.save_settings(session, catalog, g.tool_session, request.form)
        return redirect(url_for("quiz.settings", saved=1), code=303)
    current = services.settings_for(session, catalog, g.tool_session.course_id)
    available = {area: len(qs) for area, qs in services._bank_by_area(catalog).items()}
    return render_template(
        "quiz/settings.html", settings=current, available=available, format_date=format_date
    )


@bp.get("/results")
@read_only
@requires_staff
def results() -> ResponseReturnValue:
    page = services.results_page(get_session(), runtime.catalog(), g.tool_session)
    return render_template("quiz/results.html", page=page)


@bp.get("/results.csv")
@read_only
@requires_staff
def results_csv() -> ResponseReturnValue:
    page = services.results_page(get_session(), runtime.catalog(), g.tool_session)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            str(_l("Trainee")),
            str(_l("Attempt")),
            str(_l("Started")),
            str(_l("Minutes taken")),
            str(_l("Score (percent)")),
            str(_l("Passed")),
            str(_l("Counts for the grade")),
        ]
    )
    for member, attempts, chosen in page.members:
        name = member.person.display_name or member.person.sub
        name = "'" + name if name[:1] in ("=", "+", "-", "@") else name
        for attempt in attempts:
            taken = ""
            if attempt.submitted_at:
                taken = f"{(attempt.submitted_at - attempt.started_at).total_seconds() / 60:.1f}"
            writer.writerow(
                [
                    name,
                    attempt.number,
                    attempt.started_at.isoformat(timespec="seconds"),
                    taken,
                    "" if attempt.percent is None else f"{attempt.percent:.1f}",
                    "" if attempt.passed is None else ("yes" if attempt.passed else "no"),
                    "yes" if chosen is not None and chosen.id == attempt.id else "",
                ]
            )
    return Response(
        ("\ufeff" + out.getvalue()).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="tsunagu-test-results.csv"'},
    )


@bp.post("/regrade")
@requires_staff
def regrade() -> ResponseReturnValue:
    changed = services.regrade(get_session(), runtime.catalog(), g.tool_session)
    return redirect(url_for("quiz.results", regraded=changed), code=303)


@bp.post("/accommodations")
@requires_staff
def accommodations() -> ResponseReturnValue:
    raw = request.form.get("member_id", "")
    if not raw.isdigit():
        raise BadRequest(_l("Choose a trainee."))
    services.grant_accommodation(get_session(), g.tool_session, int(raw), request.form)
    return redirect(url_for("quiz.results", granted=1) + "#accommodations", code=303)
