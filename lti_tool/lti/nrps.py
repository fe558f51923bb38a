"""Names and Role Provisioning Services: a context's members, following `Link: rel="next"`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from lti_tool.lti import claims as C
from lti_tool.lti.roles import Role, map_roles
from lti_tool.lti.services import ServiceClient, ServiceError

MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
MAX_PAGES = 200


@dataclass(frozen=True)
class RosterMember:
    sub: str
    roles: frozenset[Role]
    active: bool
    name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None


def _opt(value: Any, limit: int) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def parse_member(entry: Any) -> RosterMember | None:
    if not isinstance(entry, dict):
        return None
    sub = entry.get("user_id")
    roles = entry.get("roles")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or not isinstance(roles, list):
        return None
    return RosterMember(
        sub=sub,
        roles=map_roles(role for role in roles if isinstance(role, str)),
        active=entry.get("status", "Active") == "Active",
        name=_opt(entry.get("name"), 500),
        given_name=_opt(entry.get("given_name"), 255),
        family_name=_opt(entry.get("family_name"), 255),
        email=_opt(entry.get("email"), 320),
    )


def fetch_members(client: ServiceClient, memberships_url: str) -> Iterator[RosterMember]:
    url: str | None = memberships_url
    pages = 0
    while url is not None:
        pages += 1
        if pages > MAX_PAGES:
            raise ServiceError("membership pages do not end", retryable=False)
        response = client.request("GET", url, (C.SCOPE_NRPS,), accept=MEMBERSHIP_TYPE)
        if response.status_code != 200:
            raise ServiceError(
                f"memberships answered {response.status_code}",
                status=response.status_code,
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            document = response.json()
        except ValueError:
            raise ServiceError("memberships answer is not JSON") from None
        for entry in document.get("members", []) if isinstance(document, dict) else []:
            member = parse_member(entry)
            if member is not None:
                yield member
        url = _next_link(response)


def _next_link(response: requests.Response) -> str | None:
    link = response.links.get("next")
    if (
        link
        and isinstance(link.get("url"), str)
        and link["url"].startswith(("https://", "http://"))
    ):
        return str(link["url"])
    return None
