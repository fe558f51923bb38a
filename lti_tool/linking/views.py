"""The deep-linking picker, the one-time setup of an unlinked activity, and opening an item."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from lti_tool import runtime
from lti_tool.db import get_session
from lti_tool.errors import BadRequest, NotFound
from lti_tool.identity.models import ResourceLink
from lti_tool.linking import services
from lti_tool.linking.registry import registry
from lti_tool.web.context import requires_session, requires_staff
from lti_tool.web.security import content_security_policy, origin_of

bp = Blueprint("linking", __name__, template_folder="templates")


def _chosen_items(single: bool) -> list[services.Chosen]:
    keys = request.form.getlist("item")
    if single and len(keys) > 1:
        raise BadRequest(_l("Choose one item."))
    chosen = []
    for key in keys:
        item = registry().get(key)
        if item is None:
            raise BadRequest(
                _l("That item is not available."), log_detail=f"unknown item {key[:40]}"
            )
        chosen.append(
            services.Chosen(item=item, options=services.parse_options(item, request.form))
        )
    return chosen


@bp.get("/link/pick")
@requires_staff
def pick() -> ResponseReturnValue:
    ts = g.tool_session
    deep_link = services.deep_link_request(
        get_session(), ts.deep_link_id, ts.course_id, ts.member_id
    )
    return render_template(
        "linking/pick.html",
        items=registry().items(),
        multiple=deep_link.accept_multiple,
        action=url_for("linking.pick_submit"),
    )


@bp.post("/link/pick")
@requires_staff
def pick_submit() -> ResponseReturnValue:
    ts = g.tool_session
    session = get_session()
    deep_link = services.deep_link_request(session, ts.deep_link_id, ts.course_id, ts.member_id)
    cfg = runtime.config()
    answer = services.answer_deep_link(
        session,
        cfg.secret_key,
        cfg.tool_base_url,
        deep_link,
        _chosen_items(single=not deep_link.accept_multiple),
        ts.locale,
    )
    response = Response(render_template("linking/return.html", answer=answer))
    # The answer posts to the platform: allow exactly that origin as a form target.
    response.headers["Content-Security-Policy"] = content_security_policy(
        f"'self' {origin_of(answer.return_url) or ''}".strip()
    )
    return response


def _resource_link() -> ResourceLink:
    ts = g.tool_session
    link = None
    if ts.resource_link_pk is not None:
        link = get_session().get(ResourceLink, ts.resource_link_pk)
    if link is None or link.course_id != ts.course_id:
        raise NotFound(_l("This page belongs to an LMS activity; open it from there."))
    return link


@bp.get("/link/setup")
@requires_staff
def setup() -> ResponseReturnValue:
    link = _resource_link()
    if services.placement_for_link(get_session(), link.id) is not None:
        return redirect(url_for("linking.open"), code=303)
    return render_template(
        "linking/pick.html",
        items=registry().items(),
        multiple=False,
        action=url_for("linking.setup_submit"),
        setup_title=link.title,
    )


@bp.post("/link/setup")
@requires_staff
def setup_submit() -> ResponseReturnValue:
    ts = g.tool_session
    session = get_session()
    link = _resource_link()
    if services.placement_for_link(session, link.id) is not None:
        # Chosen once already (perhaps by another instructor meanwhile): that choice stands.
        return redirect(url_for("linking.open"), code=303)
    chosen = _chosen_items(single=True)
    if not chosen:
        raise BadRequest(_l("Choose one item."))
    placement = services.place(session, ts.course_id, ts.member_id, chosen[0])
    services.bind(session, link.course_id, link.id, placement)
    return redirect(url_for("linking.open"), code=303)


@bp.get("/link/pending")
@requires_session
def pending() -> ResponseReturnValue:
    return redirect(url_for("home.course", activity="pending"), code=303)


@bp.get("/open")
@requires_session
def open() -> ResponseReturnValue:
    session = get_session()
    placement = services.placement_for_link(session, _resource_link().id)
    if placement is None:
        endpoint = "linking.setup" if g.tool_session.is_staff else "linking.pending"
        return redirect(url_for(endpoint), code=303)
    item = services.linkable(registry(), placement.item_key)
    values: dict[str, Any] = dict(item.endpoint_values)
    return redirect(url_for(item.endpoint, **values), code=303)
