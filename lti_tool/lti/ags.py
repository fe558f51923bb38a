"""Assignment and Grade Services: line items and scores (LTI AGS 2.0), as Moodle reads them.

Moodle's service URLs end in `?type_id=N`: `/scores` goes before the query string, which is
kept. Any `gradingProgress` but `FullyGraded` makes Moodle erase the grade, and a timestamp not
later (to the second) than the stored grade's gets 409; the grading outbox handles both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from lti_tool.lti import claims as C
from lti_tool.lti.services import ServiceClient, ServiceError

LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_SCOPES = (C.SCOPE_LINEITEM,)
SCORE_SCOPES = (C.SCOPE_SCORE,)


def service_url(base: str, suffix: str) -> str:
    """`base` + `/suffix`, with the query string kept after it."""
    parts = urlsplit(base)
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path.rstrip("/") + suffix, parts.query, "")
    )


def with_params(base: str, params: dict[str, str]) -> str:
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@dataclass(frozen=True)
class ScoreOutcome:
    status: int
    body: str


def iso_seconds(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class AgsClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def find_lineitem(
        self,
        lineitems_url: str,
        *,
        resource_link_id: str | None,
        resource_id: str | None,
        tag: str | None,
    ) -> dict[str, Any] | None:
        params = {}
        if resource_link_id:
            params["resource_link_id"] = resource_link_id
        if resource_id:
            params["resource_id"] = resource_id
        if tag:
            params["tag"] = tag
        response = self.client.request(
            "GET", with_params(lineitems_url, params), LINEITEM_SCOPES, accept=LINEITEMS_TYPE
        )
        if response.status_code != 200:
            raise ServiceError(
                f"line items answered {response.status_code}",
                status=response.status_code,
                retryable=_retryable(response.status_code),
                body=response.text[:500],
            )
        try:
            items = response.json()
        except ValueError:
            raise ServiceError("line items answer is not JSON") from None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            if resource_id and item.get("resourceId") != resource_id:
                continue
            if tag and item.get("tag") != tag:
                continue
            return item
        return None

    def create_lineitem(self, lineitems_url: str, item: dict[str, Any]) -> dict[str, Any]:
        response = self.client.request(
            "POST",
            lineitems_url,
            LINEITEM_SCOPES,
            json_body=item,
            accept=LINEITEM_TYPE,
            content_type=LINEITEM_TYPE,
        )
        if response.status_code not in (200, 201):
            raise ServiceError(
                f"line item creation answered {response.status_code}",
                status=response.status_code,
                retryable=_retryable(response.status_code),
                body=response.text[:500],
            )
        try:
            created = response.json()
        except ValueError:
            raise ServiceError("line item answer is not JSON") from None
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise ServiceError("line item answer has no id")
        return created

    def post_score(self, lineitem_url: str, score: dict[str, Any]) -> ScoreOutcome:
        response = self.client.request(
            "POST",
            service_url(lineitem_url, "/scores"),
            SCORE_SCOPES,
            json_body=score,
            content_type=SCORE_TYPE,
        )
        return ScoreOutcome(status=response.status_code, body=response.text[:1000])


def _retryable(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500
