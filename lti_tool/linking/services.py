"""Deep-linking requests, placements, and binding LMS activities to them."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from lti_tool.db import Direct, Prepared, utcnow
from lti_tool.errors import BadRequest, Conflict, NotFound
from lti_tool.identity.models import Course, ResourceLink
from lti_tool.linking.models import DeepLinkRequest, Placement, ResourceLinkPlacement
from lti_tool.linking.registry import ItemOption, LinkableItem, LinkRegistry
from lti_tool.lti.deep_linking import LinkItem, response_jwt
from lti_tool.lti.launch import Launch
from lti_tool.lti.models import Deployment, Platform

PLACEMENT_PARAM = "tsunagu_placement"
REQUEST_LIFETIME = dt.timedelta(hours=1)


def open_deep_link_request(
    session: Session, course_id: int, member_id: int, launch: Launch
) -> DeepLinkRequest:
    assert launch.deep_linking is not None
    request = DeepLinkRequest(
        course_id=course_id,
        member_id=member_id,
        return_url=launch.deep_linking.return_url,
        data=launch.deep_linking.data[:4096] if launch.deep_linking.data else None,
        accept_multiple=launch.deep_linking.accept_multiple,
    )
    session.add(request)
    session.flush()
    return request


def deep_link_request(
    session: Session, request_id: int | None, course_id: int, member_id: int
) -> DeepLinkRequest:
    found = None
    if request_id is not None:
        found = session.scalars(
            select(DeepLinkRequest).where(
                DeepLinkRequest.id == request_id,
                DeepLinkRequest.course_id == course_id,
                DeepLinkRequest.member_id == member_id,
            )
        ).first()
    if found is None:
        raise NotFound(
            _l("There is no content selection in progress."),
            hint=_l("Use the LMS's “Select content” button to choose what an activity shows."),
        )
    if found.used_at is not None:
        raise Conflict(_l("This content selection was already sent to the LMS."))
    if found.created_at < utcnow() - REQUEST_LIFETIME:
        raise Conflict(
            _l("This content selection has expired."),
            hint=_l("Press “Select content” in the LMS again."),
        )
    return found


def parse_options(item: LinkableItem, form: Mapping[str, str]) -> dict[str, int]:
    """The instructor's options for `item` from the picker form (field `<key>:<option>`)."""
    values: dict[str, int] = {}
    for option in item.options:
        raw = form.get(f"{item.key}:{option.name}", "").strip()
        values[option.name] = _option_value(option, raw)
    return values


def _option_value(option: ItemOption, raw: str) -> int:
    if raw == "":
        return option.default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            _l("“%(label)s” must be a whole number.", label=option.label),
            log_detail=f"option {option.name} not a number",
        ) from None
    if not option.minimum <= value <= option.maximum:
        raise BadRequest(
            _l(
                "“%(label)s” must be between %(low)s and %(high)s.",
                label=option.label,
                low=option.minimum,
                high=option.maximum,
            ),
            log_detail=f"option {option.name} out of range",
        )
    return value


def create_placement(
    session: Session,
    course_id: int,
    member_id: int | None,
    item_key: str,
    options: dict[str, Any],
) -> Placement:
    placement = Placement(
        public_id=secrets.token_urlsafe(16),
        course_id=course_id,
        item_key=item_key,
        options=options,
        created_by_member_id=member_id,
    )
    session.add(placement)
    session.flush()
    return placement


@dataclass(frozen=True)
class Chosen:
    item: LinkableItem
    options: dict[str, int]


def place(session: Session, course_id: int, member_id: int | None, choice: Chosen) -> Placement:
    placement = create_placement(session, course_id, member_id, choice.item.key, choice.options)
    if choice.item.on_placed is not None:
        choice.item.on_placed(session, course_id, choice.options)
    return placement


@dataclass(frozen=True)
class DeepLinkAnswer:
    return_url: str
    jwt: str


def answer_deep_link(
    session: Session,
    secret_key: str,
    tool_base_url: str,
    request: DeepLinkRequest,
    chosen: Sequence[Chosen],
    locale: str,
) -> DeepLinkAnswer:
    """Create the placements and the signed response for the platform; the request is used."""
    if not chosen:
        raise BadRequest(_l("Choose at least one item."))
    if len(chosen) > 1 and not request.accept_multiple:
        raise BadRequest(_l("This LMS accepts one item at a time."))
    course = session.get(Course, request.course_id)
    assert course is not None
    deployment = session.get(Deployment, course.deployment_id)
    assert deployment is not None
    platform = session.get(Platform, deployment.platform_id)
    assert platform is not None
    items = []
    for choice in chosen:
        placement = place(session, request.course_id, request.member_id, choice)
        title = choice.item.title.plain(locale)
        gradable = choice.item.gradable
        items.append(
            LinkItem(
                title=title,
                text=choice.item.description.plain(locale),
                url=f"{tool_base_url}/lti/launch?placement={placement.public_id}",
                custom={PLACEMENT_PARAM: placement.public_id},
                score_maximum=gradable.score_maximum if gradable else None,
                label=title if gradable else None,
                resource_id=choice.item.key if gradable else None,
                tag=gradable.tag if gradable else None,
            )
        )
    request.used_at = utcnow()
    token = response_jwt(
        session,
        secret_key,
        platform,
        deployment.deployment_id,
        request.return_url,
        request.data,
        items,
    )
    return DeepLinkAnswer(return_url=request.return_url, jwt=token)


def _placement_id_of(launch: Launch) -> str | None:
    custom = launch.custom_value(PLACEMENT_PARAM)
    if custom:
        return custom[:32]
    if launch.target_link_uri:
        values = parse_qs(urlsplit(launch.target_link_uri).query).get("placement")
        if values:
            return values[0][:32]
    return None


_PLACEMENT_OF_LINK = (
    select(Placement)
    .join(ResourceLinkPlacement, ResourceLinkPlacement.placement_id == Placement.id)
    .where(ResourceLinkPlacement.resource_link_pk == bindparam("resource_link_pk"))
)


def placement_for_link(session: Session, resource_link_pk: int) -> Placement | None:
    return session.scalars(_PLACEMENT_OF_LINK, {"resource_link_pk": resource_link_pk}).first()


# Every launch of a set-up activity asks only this: read without loading the placement.
_BOUND_PLACEMENT = Prepared(
    select(ResourceLinkPlacement.placement_id).where(
        ResourceLinkPlacement.resource_link_pk == bindparam("resource_link_pk")
    )
)


def bind(session: Session, course_id: int, resource_link_pk: int, placement: Placement) -> None:
    if placement.course_id != course_id:
        raise NotFound("placement of another course")
    binding = session.get(ResourceLinkPlacement, resource_link_pk)
    if binding is None:
        session.add(
            ResourceLinkPlacement(resource_link_pk=resource_link_pk, placement_id=placement.id)
        )
    else:
        binding.placement_id = placement.id
    session.flush()


def bound_placement(conn: Direct, resource_link_pk: int) -> int | None:
    """The id of the placement an activity is bound to, if it is."""
    found = conn.first(_BOUND_PLACEMENT, {"resource_link_pk": resource_link_pk})
    return int(found[0]) if found is not None else None


# The same, found by the LMS's ids of the activity (its course's key from `identity`).
_BOUND_PLACEMENT_OF_ACTIVITY = Prepared(
    select(ResourceLinkPlacement.placement_id)
    .join(ResourceLink, ResourceLink.id == ResourceLinkPlacement.resource_link_pk)
    .join(Course, Course.id == ResourceLink.course_id)
    .where(
        Course.deployment_id == bindparam("deployment_pk"),
        Course.context_key == bindparam("context_key"),
        ResourceLink.resource_link_id == bindparam("resource_link_id"),
    )
)


def bound_placement_read(launch: Launch, context_key: str) -> tuple[Prepared, dict[str, Any]]:
    """The read of the placement the launch's activity is bound to (a row of its id, or
    none), for a caller that sends it with reads of its own (`Direct.batch`)."""
    return _BOUND_PLACEMENT_OF_ACTIVITY, {
        "deployment_pk": launch.deployment_pk,
        "context_key": context_key,
        "resource_link_id": launch.resource_link_id,
    }


def names_placement(launch: Launch) -> bool:
    """Whether the launch names a placement to bind its activity to (see `resolve_placement`)."""
    return _placement_id_of(launch) is not None


def resolve_placement(
    session: Session,
    course_id: int,
    resource_link_pk: int,
    launch: Launch,
    registry: LinkRegistry | None = None,
) -> int | None:
    """The id of the placement an activity opens: its binding, else the one its launch names.
    A placement from another course of the same platform (a copied course) is copied here, with
    its options taking effect in this course as they did in the original (`on_placed`)."""
    bound = bound_placement(Direct.within(session), resource_link_pk)
    if bound is not None:
        return bound
    public_id = _placement_id_of(launch)
    if public_id is None:
        return None
    found = session.scalars(select(Placement).where(Placement.public_id == public_id)).first()
    if found is None:
        return None
    if found.course_id != course_id:
        source_platform = session.scalar(
            select(Deployment.platform_id).join(Course).where(Course.id == found.course_id)
        )
        if source_platform != launch.platform_id:
            return None
        item = registry.get(found.item_key) if registry is not None else None
        if item is not None:
            found = place(session, course_id, None, Chosen(item=item, options=dict(found.options)))
        else:
            found = create_placement(session, course_id, None, found.item_key, dict(found.options))
    bind(session, course_id, resource_link_pk, found)
    return found.id


def linkable(registry: LinkRegistry, key: str) -> LinkableItem:
    item = registry.get(key)
    if item is None:
        raise NotFound(
            _l("The content this activity showed is no longer available."),
            log_detail=f"item {key} not in registry",
        )
    return item
