"""Helpers for the launch, login, role and scoping tests: forging tokens, reading the tool's
pages and counting what a request wrote."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
import requests
from sqlalchemy import func, select

from lti_tool.db import Database
from lti_tool.identity.models import Course, Member, Person
from lti_tool.lti.models import ToolKey, UsedLoginState
from lti_tool.lti.state import StateSigner
from lti_tool.models import Base
from tests.platform.lms import PlatformKey, query_of

# Refusal pages are asserted in English whatever the Japanese catalog holds: a refused launch has
# no session, so the page follows the browser's language.
ENGLISH = {"Accept-Language": "en"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unsigned_token(body: dict[str, Any], header: dict[str, Any]) -> str:
    """A JWT with an empty signature (what `alg: none` looks like)."""
    return f"{b64json(header)}.{b64json(body)}."


def hs256_token(body: dict[str, Any], secret: bytes, header: dict[str, Any]) -> str:
    """An HS256 JWT built by hand: PyJWT rightly refuses to use a PEM key as an HMAC secret."""
    signing_input = f"{b64json({**header, 'alg': 'HS256'})}.{b64json(body)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def rs256_without_kid(body: dict[str, Any], key: PlatformKey) -> str:
    return jwt.encode(body, key.private_pem, algorithm="RS256")


def swap_body(token: str, body: dict[str, Any]) -> str:
    """The token with another body and its original header and signature."""
    header, _, signature = token.split(".")
    return f"{header}.{b64json(body)}.{signature}"


def table_counts(db: Database) -> dict[str, int]:
    """Rows in every table but the tool's keys: a refused request must leave these unchanged."""
    with db.read_scope() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
            if table.name != ToolKey.__tablename__
        }


def launch_rows(db: Database) -> tuple[int, ...]:
    """Courses, people and members, the rows a launch creates."""
    with db.read_scope() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Course, Person, Member)
        )


def login_state_unspent(db: Database, state: str, secret: str) -> bool:
    """The tool issued this state, it has not expired, and no launch has spent it yet."""
    decoded = StateSigner(secret).decode(state)
    if decoded is None or decoded.expired():
        return False
    with db.read_scope() as session:
        return session.get(UsedLoginState, decoded.key) is None


def page_text(response: requests.Response) -> str:
    """The response body with HTML entities resolved (`&#39;` and friends)."""
    return html.unescape(response.text)


def html_lang(response: requests.Response) -> str | None:
    found = re.search(r'<html[^>]*\blang="([^"]+)"', response.text)
    return found.group(1) if found else None


def session_token_of(url: str) -> str:
    return query_of(url)["ts"]


def open_overview(browser: Any, page: requests.Response, **kwargs: Any) -> requests.Response:
    """The course overview, opened with the session token of a landing page (staff land on
    different pages depending on the activity's setup; the overview is where rights show)."""
    return browser.get("/course/overview", params={"ts": session_token_of(page.url)}, **kwargs)


def csrf_token_of(response: requests.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert found, "page has no CSRF field"
    return found.group(1)


def is_on_tool(location: str, tool_url: str) -> bool:
    """Whether a redirect target, resolved against the tool's URL, stays on the tool."""
    target, base = urlsplit(urljoin(tool_url + "/", location)), urlsplit(tool_url)
    return (target.scheme, target.netloc) == (base.scheme, base.netloc)
