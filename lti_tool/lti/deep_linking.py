"""The LtiDeepLinkingResponse: a JWT signed by the tool, auto-posted back to the platform.

Built with pylti1p3's `DeepLink` (iss = our client_id, aud = the platform's issuer,
deployment_id, content items), with the request's `data` echoed only when it was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem
from sqlalchemy.orm import Session

from lti_tool.lti import claims as C
from lti_tool.lti.models import Platform
from lti_tool.lti.toolconf import DbToolConf


@dataclass(frozen=True)
class LinkItem:
    """One `ltiResourceLink` content item."""

    title: str
    text: str
    url: str
    custom: dict[str, str]
    score_maximum: float | None = None
    label: str | None = None
    resource_id: str | None = None
    tag: str | None = None


def _resource(item: LinkItem) -> DeepLinkResource:
    resource = (
        DeepLinkResource()
        .set_type("ltiResourceLink")
        .set_title(item.title)
        .set_url(item.url)
        .set_custom_params(item.custom)
    )
    if item.score_maximum is not None:
        line_item = LineItem().set_score_maximum(item.score_maximum)
        if item.label:
            line_item.set_label(item.label)
        if item.resource_id:
            line_item.set_resource_id(item.resource_id)
        if item.tag:
            line_item.set_tag(item.tag)
        resource.set_lineitem(line_item)
    return resource


def response_jwt(
    session: Session,
    secret_key: str,
    platform: Platform,
    deployment_id: str,
    return_url: str,
    data: str | None,
    items: Sequence[LinkItem],
) -> str:
    registration = DbToolConf(session, secret_key).registration_for(platform)
    deep_link = DeepLink(
        registration,
        deployment_id,
        {
            "deep_link_return_url": return_url,
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe", "window"],
        },
    )
    message = deep_link.get_message_jwt([_resource(item) for item in items])
    message.pop(C.DL_DATA, None)
    if data is not None:
        message[C.DL_DATA] = data
    for content_item, item in zip(message[C.DL_CONTENT_ITEMS], items, strict=True):  # type: ignore[call-overload]
        if item.text:
            content_item["text"] = item.text
    return str(deep_link.encode_jwt(message))  # type: ignore[no-untyped-call]
