"""Module pages for trainees, and progress and settings pages for instructors."""

from __future__ import annotations

from collections.abc import Hashable

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from lti_tool import runtime
from lti_tool.catalog.model import Unit
from lti_tool.db import Direct, get_db, get_session, read_only
from lti_tool.home.services import safe_next
from lti_tool.modules import services
from lti_tool.web.context import requires_session, requires_staff
from lti_tool.web.security import content_security_policy
from lti_tool.web.templating import page_cache

bp = Blueprint("modules", __name__, url_prefix="/modules", template_folder="templates")


def _aids() -> services.ReadingAids:
    return services.reading_aids(Direct.within(get_session()), g.tool_session)


@bp.get("/")
@requires_session
def index() -> ResponseReturnValue:
    with get_db().direct() as conn, conn.snapshot():
        pages = services.course_modules(conn, runtime.catalog(), g.tool_session)
        aids = services.reading_aids(conn, g.tool_session)
    return render_template("modules/index.html", pages=pages, aids=aids)


@bp.get("/<module_id>")
@read_only
@requires_session
def module(module_id: str) -> ResponseReturnValue:
    page = services.module_page(get_session(), runtime.catalog(), g.tool_session, module_id)
    return render_template("modules/module.html", page=page, aids=_aids())


def static_parts(unit: Unit, locale: str, easy: bool, has_video: bool) -> Markup:
    """The unit's body, terms, key points and sources, rendered once per language (content is
    immutable while the app runs) — most of a unit page's rendering."""
    cache: dict[tuple[str, str, bool, bool], Markup] = current_app.extensions.setdefault(
        "tsunagu.unit_parts", {}
    )
    key = (unit.id, locale, easy, has_video)
    found = cache.get(key)
    if found is None:
        found = Markup(  # noqa: S704 - the output of our own autoescaped template
            render_template("modules/_unit_static.html", unit=unit, easy=easy, has_video=has_video)
        )
        cache[key] = found
    return found


def _unit_page_key(page: services.UnitPage, aids: services.ReadingAids) -> Hashable:
    """Everything a unit page shows but the reader's tokens (see PageCache): the unit and its
    place in the course's order, the video, the reader's aids, and their progress and answers."""
    progress = page.progress
    answers = progress.check_answers or {}
    return (
        page.module.module.id,
        page.unit.id,
        page.position,
        len(page.module.units),
        page.previous.id if page.previous else None,
        page.next.id if page.next else None,
        page.video,
        aids.show_furigana,
        aids.easy_japanese,
        progress.read_at is not None,
        progress.checked_at is not None,
        progress.check_correct,
        progress.check_total,
        tuple(sorted((str(key), repr(value)) for key, value in answers.items())),
    )


@bp.get("/<module_id>/<unit_id>")
@requires_session
def unit(module_id: str, unit_id: str) -> ResponseReturnValue:
    # The page most read: one statement reads it, one records the visit (see db.Prepared).
    with get_db().direct() as conn:
        page, aids = services.open_unit(conn, runtime.catalog(), g.tool_session, module_id, unit_id)
    locale = g.tool_session.locale
    easy = locale == "ja" and aids.easy_japanese and page.unit.has_easy
    parts = static_parts(page.unit, locale, easy, page.video is not None)
    response = Response(
        page_cache("tsunagu.unit_pages").render(
            _unit_page_key(page, aids),
            "modules/unit.html",
            page=page,
            aids=aids,
            static_parts=parts,
        )
    )
    if page.video is not None and page.video.kind != "link":
        sources = g.get("csp_sources", "'self'")
        extra = " ".join(services.VIDEO_FRAME_ORIGINS)
        response.headers["Content-Security-Policy"] = (
            content_security_policy(sources) + f"; frame-src {extra}; media-src 'self' https:"
        )
    return response


@bp.post("/<module_id>/<unit_id>/read")
@requires_session
def read(module_id: str, unit_id: str) -> ResponseReturnValue:
    services.mark_read(get_session(), runtime.catalog(), g.tool_session, module_id, unit_id)
    if request.headers.get("X-Requested-With") == "fetch":
        return {"status": "ok"}
    return redirect(
        url_for("modules.unit", module_id=module_id, unit_id=unit_id) + "#self-check", code=303
    )


@bp.post("/<module_id>/<unit_id>/check")
@requires_session
def check(module_id: str, unit_id: str) -> ResponseReturnValue:
    services.submit_self_check(
        get_session(), runtime.catalog(), g.tool_session, module_id, unit_id, request.form
    )
    return redirect(
        url_for("modules.unit", module_id=module_id, unit_id=unit_id) + "#self-check", code=303
    )


@bp.post("/reading-aids")
@requires_session
def reading_aids() -> ResponseReturnValue:
    def flag(name: str) -> bool | None:
        value = request.form.get(name)
        return None if value is None else value == "on"

    services.set_reading_aids(
        get_session(), g.tool_session, furigana=flag("furigana"), easy=flag("easy")
    )
    return redirect(safe_next(request.form.get("next"), g.tool_session), code=303)


@bp.get("/progress")
@read_only
@requires_staff
def progress() -> ResponseReturnValue:
    reports = services.progress_reports(get_session(), runtime.catalog(), g.tool_session.course_id)
    return render_template("modules/progress.html", reports=reports, aids=_aids())


@bp.get("/progress.csv")
@read_only
@requires_staff
def progress_csv() -> ResponseReturnValue:
    reports = services.progress_reports(get_session(), runtime.catalog(), g.tool_session.course_id)
    body = services.progress_csv(reports, g.tool_session.locale)
    return Response(
        body.encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="tsunagu-progress.csv"'},
    )


@bp.get("/<module_id>/settings")
@requires_staff
def settings(module_id: str) -> ResponseReturnValue:
    page = services.module_page(get_session(), runtime.catalog(), g.tool_session, module_id)
    return render_template(
        "modules/settings.html", page=page, aids=_aids(), format_date=services.format_date
    )


@bp.post("/<module_id>/settings")
@requires_staff
def save_settings(module_id: str) -> ResponseReturnValue:
    services.save_settings(
        get_session(),
        runtime.catalog(),
        g.tool_session,
        module_id,
        request.form,
        request.form.getlist("required"),
    )
    return redirect(url_for("modules.settings", module_id=module_id, saved=1), code=303)
