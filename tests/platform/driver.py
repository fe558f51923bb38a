"""Drive launches as a browser would: login initiation, the platform's auth step, the launch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from tests.platform.lms import TestLMS, ToolRegistration, User, parse_form, query_of


@dataclass
class LoginResult:
    response: requests.Response
    auth_url: str
    state: str
    nonce: str


class Browser:
    """A `requests` session with cookies, following nothing automatically."""

    def __init__(self, tool_url: str, lms: TestLMS) -> None:
        self.tool_url = tool_url
        self.lms = lms
        self.http = requests.Session()

    def login(
        self, reg: ToolRegistration, user: User, *, method: str = "POST", **hint: Any
    ) -> LoginResult:
        import json

        params = self.lms.login_params(reg, user, message_hint=json.dumps(hint) if hint else None)
        if method == "POST":
            response = self.http.post(reg.login_url, data=params, allow_redirects=False, timeout=10)
        else:
            response = self.http.get(
                reg.login_url, params=params, allow_redirects=False, timeout=10
            )
        assert response.status_code == 302, (response.status_code, response.text[:500])
        location = response.headers["Location"]
        query = query_of(location)
        return LoginResult(response, location, query["state"], query["nonce"])

    def authorize(self, login: LoginResult) -> tuple[str, dict[str, str]]:
        """The platform's auth step: returns the form the platform auto-posts."""
        response = self.http.get(login.auth_url, allow_redirects=False, timeout=10)
        assert response.status_code == 200, response.text[:500]
        return parse_form(response.text)

    def post_launch(self, fields: dict[str, str], action: str | None = None) -> requests.Response:
        return self.http.post(
            action or self.tool_url + "/lti/launch", data=fields, allow_redirects=False, timeout=10
        )

    def launch(self, reg: ToolRegistration, user: User, **hint: Any) -> requests.Response:
        """A complete launch; returns the landing page (after the tool's 303)."""
        login = self.login(reg, user, **hint)
        action, fields = self.authorize(login)
        response = self.post_launch(fields, action)
        assert response.status_code == 303, (response.status_code, response.text[:800])
        return self.get(response.headers["Location"])

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.http.get(
            urljoin(self.tool_url, url), allow_redirects=False, timeout=10, **kwargs
        )

    def post(self, url: str, data: dict[str, str], **kwargs: Any) -> requests.Response:
        return self.http.post(
            urljoin(self.tool_url, url), data=data, allow_redirects=False, timeout=10, **kwargs
        )
