"""A second LTI 1.3 platform, built on the PyPI package `lti1p3platform` (MIT), served over
loopback HTTP: so that the tool is also checked against a reading of the specifications that is
neither ours (tests/platform/lms.py) nor that of the tool's own library (pylti1p3).

Everything a platform decides is left to lti1p3platform where it offers it: the registration and
its keys (`Registration`, `LTI1P3PlatformConfAbstract.get_jwks`), the OIDC login initiation
(`OIDCLoginAbstract`), the id_token and its auto-posting form (`LTIAdvantageMessageLaunchAbstract`
and `framework/templates/launch.html`), the deep-linking settings claim and the validation of the
tool's answer (`validate_deeplinking_resp`), the OAuth2 token endpoint verifying the tool's client
assertion against the tool's JWKS URL (`get_access_token`), and the AGS and NRPS endpoints with
their bearer-token checks (`AssignmentsGradesService`, `NamesRoleProvisioningService`).

Our own code is only glue (a Flask request adapter and response conversion, as lti1p3platform
ships them for Django and FastAPI only) and the few checks lti1p3platform lacks; each says so.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, redirect, request
from flask import Request as FlaskHttpRequest
from flask import Response as FlaskResponse
from lti1p3platform.exceptions import (
    LineItemNotFoundException,
    LtiDeepLinkingResponseException,
    LtiException,
    MissingRequiredClaim,
    PreflightRequestValidationException,
    UnsupportedGrantType,
)
from lti1p3platform.framework.templates import template as launch_form_template
from lti1p3platform.lineitem import TLineItem
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request as LtiRequest
from lti1p3platform.request import TRequest
from lti1p3platform.response import Response as LtiResponse
from lti1p3platform.response import generate_next_link
from lti1p3platform.score import TScore, UpdateScoreStatus
from lti1p3platform.service_connector import (
    AssignmentsGradesService,
    NamesRoleProvisioningService,
    TPage,
)

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Person:
    sub: str
    roles: list[str]
    name: str | None = None
    email: str | None = None


@dataclass
class LaunchPlan:
    """What the platform launches when the tool's auth request names this plan (its
    `lti_message_hint`): who, where, and which services the launch offers."""

    user: Person
    deep_link: bool = False
    context_id: str = "course-lp"
    context_title: str = "多文化共生コーディネーター研修"
    context_label: str = "MCC-1"
    resource_link_id: str = "rl-lp-1"
    resource_link_title: str = "Module A (lti1p3platform)"
    ags: bool = True
    lineitem: str | None = None  # a line item id of this platform, for the `lineitem` claim
    nrps: bool = True
    # Deep linking's opaque `data`. lti1p3platform types it as a dict (`set_dl(extra_data=...)`)
    # and sends what it is given; the LTI 1.3 JSON Schema binding makes `data` a String
    # (DeepLinkingSettings), so a string is passed.
    dl_data: str | None = None


@dataclass
class TokenGrant:
    """A token request lti1p3platform accepted: the form, the (verified) client assertion, and
    the answer."""

    form: dict[str, str]
    assertion: dict[str, Any]
    answer: dict[str, Any]


@dataclass
class ReceivedScore:
    lineitem_id: str
    url: str
    content_type: str
    body: TScore


@dataclass
class DeepLinkReturn:
    """A deep-linking response lti1p3platform validated: its content items and all its claims."""

    content_items: list[dict[str, Any]]
    claims: dict[str, Any]


@dataclass
class Records:
    auth_requests: list[dict[str, str]] = field(default_factory=list)
    tool_jwks_fetches: list[str] = field(default_factory=list)
    token_grants: list[TokenGrant] = field(default_factory=list)
    token_refusals: list[tuple[int, str]] = field(default_factory=list)
    service_requests: list[tuple[str, str]] = field(default_factory=list)  # (method, URL)
    service_refusals: list[tuple[int, str]] = field(default_factory=list)
    scores: list[ReceivedScore] = field(default_factory=list)
    deep_link_returns: list[DeepLinkReturn] = field(default_factory=list)
    deep_link_refusals: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ToolSettings:
    """The platform's registration of the tool."""

    client_id: str
    deployment_id: str
    launch_url: str
    oidc_login_url: str
    key_set_url: str


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


# --- lti1p3platform's abstract classes, made concrete ------------------------------------------


class PlatformConf(LTI1P3PlatformConfAbstract):  # type: ignore[misc]
    """The platform's configuration: its issuer and RSA key pair, and the tool's registration.
    Built afresh for each request (as lti1p3platform's README does), so the tool's JWKS is
    fetched by lti1p3platform whenever it verifies something the tool signed."""

    def init_platform_config(self, platform: LtiPlatform) -> None:
        self.platform = platform
        tool = platform.tool
        assert tool is not None, "no tool registered"
        self._registration = (
            Registration()
            .set_iss(platform.issuer)
            .set_client_id(tool.client_id)
            .set_deployment_id(tool.deployment_id)
            .set_launch_url(tool.launch_url)
            # The tool has one launch URL, for deep linking too.
            .set_deeplink_launch_url(tool.launch_url)
            .set_oidc_login_url(tool.oidc_login_url)
            .set_tool_key_set_url(tool.key_set_url)
            .set_platform_public_key(platform.public_pem)
            .set_platform_private_key(platform.private_pem)
        )

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        return self._registration

    def fetch_public_key(self, key_set_url: str) -> Any:
        self.platform.records.tool_jwks_fetches.append(key_set_url)
        return super().fetch_public_key(key_set_url)


class FlaskRequest(LtiRequest):  # type: ignore[misc]
    """lti1p3platform's request adapter, for Flask (it ships Django's and FastAPI's)."""

    def build_metadata(self, req: FlaskHttpRequest) -> TRequest:
        query: dict[str, Any] = req.args.to_dict()
        # Workaround: lti1p3platform's paging does arithmetic on `page` (`page + 1` in
        # handle_get_members / handle_get_lineitems) and types `page`/`limit` as int, while its
        # own Django adapter passes the query string's text: the third page of a roster would
        # raise TypeError. The adapter hands them over as numbers.
        for name in ("page", "limit"):
            if name in query:
                query[name] = int(query[name])
        return {
            "method": req.method,
            "form_data": req.form.to_dict(),
            "get_data": query,
            "headers": req.headers,
            "content_type": req.content_type,
            "path": req.path,
            "json": req.get_json(silent=True) if req.is_json else None,
        }


class OIDCLogin(OIDCLoginAbstract):  # type: ignore[misc]
    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> Any:
        return redirect(url, code=302)


class MessageLaunch(LTIAdvantageMessageLaunchAbstract):  # type: ignore[misc]
    def __init__(self, req: FlaskRequest, conf: PlatformConf, platform: LtiPlatform) -> None:
        super().__init__(req, conf)
        self.platform = platform

    def prepare_launch(self, preflight_response: dict[str, Any]) -> None:
        registration = self._platform_config.get_registration()
        self.platform.records.auth_requests.append(dict(preflight_response))
        plan = self.platform.launches.get(preflight_response.get("lti_message_hint", ""))
        # lti1p3platform checks only nonce, state, redirect_uri's presence and client_id
        # (validate_preflight_response), then posts the id_token to whatever redirect_uri the
        # request names. The checks it omits (1EdTech Security Framework 5.1.1.2: scope,
        # response_type, response_mode, prompt, login_hint; OIDC Core 3.1.2.2: a registered
        # redirect_uri) are made here, so a tool sending a wrong auth request is refused as a
        # real platform would refuse it.
        expected = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "redirect_uri": registration.get_launch_url(),
            "login_hint": plan.user.sub if plan else None,
        }
        wrong = [k for k, v in expected.items() if preflight_response.get(k) != v]
        if plan is None or wrong or preflight_response.get("prompt") not in (None, "", "none"):
            raise PreflightRequestValidationException(f"auth request: {wrong or 'prompt/hint'}")

        user = plan.user
        self.set_user_data(user.sub, user.roles, full_name=user.name, email_address=user.email)
        self.set_launch_context_claim(
            plan.context_id,
            ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
            plan.context_title,
            plan.context_label,
        )
        self.set_launch_presentation_claim("iframe", self.platform.base_url + "/course")
        base = self.platform.base_url
        if plan.deep_link:
            self.set_dl(
                base + "/deep-link-return",
                title="Add an activity",
                description="",
                accept_types={"ltiResourceLink"},
                extra_data=plan.dl_data,
            )
            return
        self.set_resource_link_claim(plan.resource_link_id, title=plan.resource_link_title)
        if plan.ags:
            self.set_ags(
                self.platform.lineitems_url(plan.context_id),
                self.platform.lineitem_url(plan.context_id, plan.lineitem)
                if plan.lineitem
                else None,
                allow_creating_lineitems=True,
            )
        if plan.nrps:
            # Two members a page: the tool must follow lti1p3platform's `Link: rel=next`.
            self.set_nrps(self.platform.memberships_url(plan.context_id) + "?limit=2")

    def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> FlaskResponse:
        return FlaskResponse(
            launch_form_template.render(launch_data), content_type="text/html; charset=utf-8"
        )


class Gradebook(AssignmentsGradesService):  # type: ignore[misc]
    """Line items and scores of one context, kept in the platform's memory."""

    def __init__(
        self, req: FlaskRequest, conf: PlatformConf, platform: LtiPlatform, context_id: str
    ) -> None:
        super().__init__(req, conf, platform.lineitems_url(context_id))
        self.platform = platform
        self.context_id = context_id

    def _items(self) -> dict[str, TLineItem]:
        return self.platform.lineitems.setdefault(self.context_id, {})

    def find_lineitems(
        self,
        page: int = 1,
        limit: int | None = None,
        line_item_id: str | None = None,
        resource_link_id: str | None = None,
        resource_id: str | None = None,
        tag: str | None = None,
    ) -> TPage:
        wanted = {"resourceLinkId": resource_link_id, "resourceId": resource_id, "tag": tag}
        items = [
            item
            for item in self._items().values()
            if all(value is None or item.get(key) == value for key, value in wanted.items())
        ]
        return {"content": items, "has_next": False, "next": None}

    def find_lineitem(self, line_item_id: str) -> TLineItem:
        try:
            return self._items()[line_item_id]
        except KeyError:
            raise LineItemNotFoundException(line_item_id) from None

    def create_lineitem(self, creation_data: TLineItem) -> TLineItem:
        item_id = "li-" + uuid.uuid4().hex[:12]
        item: TLineItem = {
            **creation_data,
            "id": self.platform.lineitem_url(self.context_id, item_id),
        }
        self._items()[item_id] = item
        return item

    def update_lineitem(self, update_data: TLineItem) -> TLineItem:
        item = self.find_lineitem(update_data["id"])
        item.update({k: v for k, v in update_data.items() if k != "id"})
        return item

    def delete_lineitem(self, line_item_id: str) -> None:
        self.find_lineitem(line_item_id)
        del self._items()[line_item_id]

    def update_score(self, line_item_id: str, score: TScore) -> UpdateScoreStatus:
        self.find_lineitem(line_item_id)
        assert self.request is not None
        self.platform.records.scores.append(
            ReceivedScore(line_item_id, request.url, self.request.content_type or "", score)
        )
        return UpdateScoreStatus.SUCCESS

    def get_results(
        self, line_item_id: str, page: int = 1, limit: int | None = None, user_id: str | None = None
    ) -> TPage:
        self.find_lineitem(line_item_id)
        return {"content": [], "has_next": False, "next": None}


class Roster(NamesRoleProvisioningService):  # type: ignore[misc]
    def __init__(
        self, req: FlaskRequest, conf: PlatformConf, platform: LtiPlatform, context_id: str
    ) -> None:
        super().__init__(req, conf, platform.memberships_url(context_id))
        self.platform = platform
        self.context_id = context_id

    def get_member_data_page(
        self,
        page: int = 1,
        limit: int | None = None,
        role: str | None = None,
        since: str | None = None,
    ) -> TPage:
        members = [
            dict(m) for m in self.platform.members if role is None or role in m.get("roles", [])
        ]
        if not limit:
            return {"content": members, "has_next": False}
        start = (page - 1) * limit
        return {"content": members[start : start + limit], "has_next": start + limit < len(members)}

    def get_context_by_id(self) -> Context:
        return Context(id=self.context_id, label="MCC-1", title="多文化共生コーディネーター研修")


def to_flask(resp: LtiResponse) -> FlaskResponse:
    """lti1p3platform's service answer as an HTTP response: a port of its Django
    `framework/django/response.py` (`wrap_json_resp`), which it has for Django only."""
    if 200 <= resp.code < 300:
        data = resp.result
        if isinstance(data, dict) and "content" in data:
            data = data["content"]
        response = FlaskResponse(
            "" if data is None else json.dumps(data),
            status=resp.code,
            content_type=resp.media_type,
        )
        if isinstance(resp.result, dict) and resp.result.get("next"):
            response.headers["Link"] = generate_next_link(resp.result["next"])
        return response
    return FlaskResponse(
        json.dumps({"error": resp.message}), status=resp.code, content_type=resp.media_type
    )


# --- the platform ---------------------------------------------------------------------------


class LtiPlatform:
    """One platform with one registered tool. `base_url` is its issuer."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.private_pem, self.public_pem = _pem_pair()
        self.tool: ToolSettings | None = None
        self.launches: dict[str, LaunchPlan] = {}
        self.lineitems: dict[str, dict[str, TLineItem]] = {}
        self.members: list[dict[str, Any]] = []
        self.records = Records()
        self.app = self._build_app()

    @property
    def issuer(self) -> str:
        return self.base_url

    def reset(self) -> None:
        self.tool = None
        self.launches.clear()
        self.lineitems.clear()
        self.members.clear()
        self.records = Records()

    def conf(self) -> PlatformConf:
        return PlatformConf(platform=self)

    def register_tool(self, tool_base_url: str) -> Registration:
        """Register the tool with this platform; returns lti1p3platform's registration."""
        self.tool = ToolSettings(
            client_id="lp-client-" + secrets.token_hex(4),
            deployment_id="lp-deployment-" + secrets.token_hex(3),
            launch_url=tool_base_url + "/lti/launch",
            oidc_login_url=tool_base_url + "/lti/login",
            key_set_url=tool_base_url + "/lti/jwks",
        )
        return self.conf().get_registration()

    # --- URLs ----------------------------------------------------------------------------------

    def lineitems_url(self, context_id: str) -> str:
        return f"{self.base_url}/ags/{context_id}/lineitems"

    def lineitem_url(self, context_id: str, item_id: str) -> str:
        return f"{self.lineitems_url(context_id)}/{item_id}"

    def memberships_url(self, context_id: str) -> str:
        return f"{self.base_url}/nrps/{context_id}/memberships"

    def add_lineitem(self, context_id: str, item_id: str, **fields: Any) -> str:
        url = self.lineitem_url(context_id, item_id)
        self.lineitems.setdefault(context_id, {})[item_id] = {"id": url, **fields}
        return url

    def plan(self, plan: LaunchPlan) -> str:
        """The URL that starts `plan` in a browser (the platform's "launch" link)."""
        hint = uuid.uuid4().hex
        self.launches[hint] = plan
        return f"{self.base_url}/launch/{hint}"

    # --- HTTP ----------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("lti1p3platform-test-platform")

        @app.get("/jwks")
        def jwks() -> Any:
            return self.conf().get_jwks()

        @app.get("/launch/<hint>")
        def start(hint: str) -> Any:
            plan = self.launches[hint]
            login = OIDCLogin(FlaskRequest(request), self.conf())
            login.set_lti_message_hint(hint=hint)
            if plan.deep_link:
                login.set_deeplinking_launch_url()
            return login.initiate_login(plan.user.sub)

        @app.get("/auth")
        def auth() -> Any:
            launch = MessageLaunch(FlaskRequest(request), self.conf(), self)
            try:
                return launch.lti_launch()
            except PreflightRequestValidationException as exc:
                return FlaskResponse(f"invalid auth request {exc}", status=400)

        @app.post("/token")
        def token() -> Any:
            return self._token()

        @app.post("/deep-link-return")
        def deep_link_return() -> Any:
            return self._deep_link_return()

        @app.route("/ags/<context_id>/lineitems", methods=["GET", "POST"])
        def lineitems(context_id: str) -> Any:
            book = Gradebook(FlaskRequest(request), self.conf(), self, context_id)
            handler = (
                book.handle_get_lineitems
                if request.method == "GET"
                else (book.handle_create_lineitem)
            )
            return self._serve(book, handler)

        @app.route("/ags/<context_id>/lineitems/<item_id>", methods=["GET", "PUT", "DELETE"])
        def lineitem(context_id: str, item_id: str) -> Any:
            book = Gradebook(FlaskRequest(request), self.conf(), self, context_id)
            handler = {
                "GET": book.handle_get_lineitem,
                "PUT": book.handle_update_lineitem,
                "DELETE": book.handle_delete_lineitem,
            }[request.method]
            return self._serve(book, handler, line_item_id=item_id)

        @app.post("/ags/<context_id>/lineitems/<item_id>/scores")
        def scores(context_id: str, item_id: str) -> Any:
            book = Gradebook(FlaskRequest(request), self.conf(), self, context_id)
            return self._serve(book, book.handle_update_score, line_item_id=item_id)

        @app.get("/nrps/<context_id>/memberships")
        def memberships(context_id: str) -> Any:
            roster = Roster(FlaskRequest(request), self.conf(), self, context_id)
            return self._serve(roster, roster.handle_get_members)

        return app

    def _token(self) -> FlaskResponse:
        form = request.form.to_dict()
        conf = self.conf()
        try:
            # lti1p3platform: required fields, grant type, and the client assertion's signature
            # against the key the tool publishes at its JWKS URL (fetched now).
            answer = conf.get_access_token(form)
        except (MissingRequiredClaim, UnsupportedGrantType) as exc:
            self.records.token_refusals.append((400, repr(exc)))
            return _json({"error": "invalid_request"}, 400)
        except (LtiException, jwt.PyJWTError) as exc:
            self.records.token_refusals.append((401, repr(exc)))
            return _json({"error": "invalid_client"}, 401)
        # lti1p3platform verifies the assertion with `verify_aud` off and never looks at its
        # iss, sub, aud, jti or at client_assertion_type; RFC 7523 3 and the LTI Security
        # Framework 4.1.1 require them (iss = sub = client_id, aud = the token endpoint).
        # The signature was verified just above, so reading the claims is safe.
        assertion = jwt.decode(form["client_assertion"], options={"verify_signature": False})
        tool = self.tool
        assert tool is not None
        audiences = assertion.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        problems = [
            name
            for name, ok in (
                (
                    "client_assertion_type",
                    form.get("client_assertion_type") == CLIENT_ASSERTION_TYPE,
                ),
                ("iss", assertion.get("iss") == tool.client_id),
                ("sub", assertion.get("sub") == tool.client_id),
                ("aud", self.base_url + "/token" in audiences),
                ("jti", bool(assertion.get("jti"))),
                ("exp", isinstance(assertion.get("exp"), int)),
            )
            if not ok
        ]
        if problems:
            self.records.token_refusals.append((401, ",".join(problems)))
            return _json({"error": "invalid_client", "fields": problems}, 401)
        self.records.token_grants.append(TokenGrant(form, assertion, dict(answer)))
        return _json(dict(answer), 200)

    def _deep_link_return(self) -> FlaskResponse:
        conf = self.conf()
        conf.set_accepted_deeplinking_types(["ltiResourceLink"])  # what the request accepted
        try:
            items = conf.validate_deeplinking_resp(request.form.to_dict())
        except (KeyError, LtiException, LtiDeepLinkingResponseException, jwt.PyJWTError) as exc:
            self.records.deep_link_refusals.append(repr(exc))
            return FlaskResponse("deep-linking response refused", status=400)
        # lti1p3platform checks the signature, exp, the message type and the item types only;
        # the claims are kept for the tests to check the rest (aud, iss, deployment_id, data).
        claims = jwt.decode(request.form["JWT"], options={"verify_signature": False})
        self.records.deep_link_returns.append(DeepLinkReturn(items, claims))
        return FlaskResponse("<p>content added</p>", content_type="text/html")

    def _serve(self, service: Any, handler: Any, **kwargs: Any) -> FlaskResponse:
        self.records.service_requests.append((request.method, request.url))
        try:
            response = to_flask(service.handle_resp(handler, **kwargs))
        except (jwt.PyJWTError, LtiException) as exc:
            # Workaround: lti1p3platform's `authenticate` lets PyJWT's errors (a token with a bad
            # signature, a malformed one, an expired one) escape from `validate_token`, which
            # would be a 500. RFC 6750 3.1: an invalid token is a 401.
            response = _json({"error": "invalid_token", "detail": type(exc).__name__}, 401)
        if response.status_code >= 400:
            self.records.service_refusals.append((response.status_code, request.url))
        return response


def _json(body: Any, status: int) -> FlaskResponse:
    return FlaskResponse(json.dumps(body), status=status, content_type="application/json")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
