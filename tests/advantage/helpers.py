"""Helpers for the LTI Advantage tests: launched sessions, queued scores, outbox state."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from sqlalchemy import select, update

from lti_tool.db import Database, utcnow
from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
from lti_tool.grading.services import Gradable, Progress, grade_item_for, record_score
from lti_tool.identity.models import Course, Member, Person, ResourceLink
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, ToolRegistration, User

SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
GRADABLE = Gradable(key="module:A", label="Module A", score_maximum=100, tag="module-completion")


def token_of(page: requests.Response) -> str:
    return parse_qs(urlsplit(page.url).query)["ts"][0]


def csrf_of(page: requests.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def path_of(url: str) -> str:
    return urlsplit(url).path


@dataclass
class Launched:
    """A launched session in a browser: its token, and the page it landed on."""

    browser: Browser
    ts: str
    page: requests.Response

    def get(self, path: str) -> requests.Response:
        joiner = "&" if "?" in path else "?"
        return self.browser.get(f"{path}{joiner}ts={self.ts}")

    def post(
        self,
        path: str,
        data: dict[str, Any] | list[tuple[str, str]],
        page: requests.Response | None = None,
    ) -> requests.Response:
        csrf = csrf_of(page if page is not None else self.page)
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        return self.browser.http.post(
            self.browser.tool_url + path,
            data=[("ts", self.ts), ("csrf_token", csrf), *fields],
            allow_redirects=False,
            timeout=10,
        )


def launch(browser: Browser, reg: ToolRegistration, user: User, **hint: Any) -> requests.Response:
    """The tool's answer to a complete launch (its 303), not followed."""
    login = browser.login(reg, user, **hint)
    action, fields = browser.authorize(login)
    return browser.post_launch(fields, action)


def follow(
    browser: Browser, response: requests.Response, limit: int = 5
) -> list[requests.Response]:
    """The tool's 303 chain from `response`: every hop, the last one the page."""
    chain = [response]
    while response.status_code in (302, 303) and len(chain) <= limit:
        response = browser.get(response.headers["Location"])
        chain.append(response)
    return chain


def launched(browser: Browser, reg: ToolRegistration, user: User, **hint: Any) -> Launched:
    answer = launch(browser, reg, user, **hint)
    assert answer.status_code == 303, (answer.status_code, answer.text[:800])
    page = follow(browser, answer)[-1]
    assert page.status_code == 200, (page.status_code, page.url, page.text[:800])
    return Launched(browser, token_of(page), page)


def tool_jwks(browser: Browser) -> dict[str, Any]:
    response = requests.get(browser.tool_url + "/lti/jwks", timeout=10)
    assert response.status_code == 200
    return response.json()


def verify_tool_jwt(browser: Browser, token: str, audience: str) -> dict[str, Any]:
    """Check a JWT the tool signed against the tool's published keys, as a platform would."""
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in tool_jwks(browser)["keys"] if k["kid"] == header["kid"])
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=audience)


# --- grades -------------------------------------------------------------------------------------


def member_of(db: Database, sub: str, context_id: str = "course-1") -> int:
    with db.session_scope() as session:
        return session.scalars(
            select(Member.id)
            .join(Person)
            .join(Course, Course.id == Member.course_id)
            .where(Person.sub == sub, Course.context_id == context_id)
        ).one()


def queue_score(
    db: Database,
    member_id: int,
    score: float,
    *,
    maximum: float = 100,
    resource_link_id: str = "rl-1",
    gradable: Gradable = GRADABLE,
    comment: str | None = None,
    progress: Progress = Progress.FINAL,
) -> int:
    """Record a score as a feature would, in a transaction of its own; returns the outbox id."""
    with db.session_scope() as session:
        member = session.get(Member, member_id)
        assert member is not None
        link = session.scalars(
            select(ResourceLink).where(
                ResourceLink.course_id == member.course_id,
                ResourceLink.resource_link_id == resource_link_id,
            )
        ).one()
        item = grade_item_for(session, link, gradable)
        row = record_score(session, member, item, score, maximum, progress, comment)
        assert row is not None
        return row.id


def outbox(db: Database, outbox_id: int) -> GradeOutbox:
    with db.session_scope() as session:
        row = session.get(GradeOutbox, outbox_id)
        assert row is not None
        session.expunge(row)
        return row


def outbox_rows(db: Database) -> list[GradeOutbox]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(GradeOutbox).order_by(GradeOutbox.id)))
        session.expunge_all()
        return rows


def make_due(db: Database, *ids: int) -> None:
    """Skip the backoff: the rows are due now (instead of waiting for them)."""
    past = utcnow() - dt.timedelta(seconds=1)
    with db.session_scope() as session:
        query = update(GradeOutbox).where(GradeOutbox.status == OutboxStatus.PENDING)
        if ids:
            query = query.where(GradeOutbox.id.in_(ids))
        session.execute(query.values(next_attempt_at=past))


def lapse_leases(db: Database) -> None:
    """As if the lease of every SENDING row had run out (a crashed worker's claim)."""
    past = utcnow() - dt.timedelta(seconds=1)
    with db.session_scope() as session:
        session.execute(
            update(GradeOutbox)
            .where(GradeOutbox.status == OutboxStatus.SENDING)
            .values(claimed_until=past)
        )


def grade_item_url(db: Database, key: str = GRADABLE.key) -> str | None:
    with db.session_scope() as session:
        return session.scalars(select(GradeItem.lineitem_url).where(GradeItem.key == key)).one()


def token_requests(lms: TestLMS, scope: str = SCORE_SCOPE) -> list[dict[str, Any]]:
    return [r for r in lms.token_requests if scope in r.get("scope", "").split()]


def scores_for(lms: TestLMS, user_id: str) -> list[dict[str, Any]]:
    return [s.body for s in lms.scores if s.body.get("userId") == user_id]


def iso_epoch(timestamp: str) -> int:
    return int(dt.datetime.fromisoformat(timestamp).timestamp())


def course_of(db: Database, context_id: str = "course-1") -> Course:
    with db.session_scope() as session:
        course = session.scalars(select(Course).where(Course.context_id == context_id)).one()
        session.expunge(course)
        return course


def add_trainees(db: Database, count: int, context_id: str = "course-1") -> list[tuple[int, str]]:
    """Trainees of the course who never launched (as a roster sync adds them): (member id, sub)."""
    from lti_tool.lti.models import Deployment

    course = course_of(db, context_id)
    with db.session_scope() as session:
        platform_id = session.scalars(
            select(Deployment.platform_id).where(Deployment.id == course.deployment_id)
        ).one()
        people = [
            Person(platform_id=platform_id, sub=f"t-{context_id}-{i:05d}", name=f"Trainee {i}")
            for i in range(count)
        ]
        session.add_all(people)
        session.flush()
        members = [Member(course_id=course.id, person_id=p.id, roles="learner") for p in people]
        session.add_all(members)
        session.flush()
        return [(m.id, p.sub) for m, p in zip(members, people, strict=True)]
