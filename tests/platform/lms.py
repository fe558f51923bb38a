"""A test LMS: the platform side of LTI 1.3, served over loopback HTTP for the tool to talk to.

It is written from the specifications, independently of the tool's code (it imports nothing
from `lti_tool`): keys and JWKS, OpenID configuration, Dynamic Registration, the OIDC auth
endpoint that answers with an auto-posting form, signed id_tokens (and forged ones on demand),
the OAuth2 token endpoint checking the tool's client assertion against the tool's JWKS, AGS
and NRPS endpoints that record what they receive, and a course page that embeds the tool in an
iframe (`contentframe`) and launches it there, as Moodle does.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, abort, jsonify, request

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"


def _b64(n: int) -> str:
    return (
        base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    )


@dataclass
class PlatformKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> PlatformKey:
        return cls(
            kid or uuid.uuid4().hex, rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )

    @property
    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }


@dataclass
class User:
    sub: str
    roles: list[str]
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None


@dataclass
class ToolRegistration:
    client_id: str
    deployment_id: str
    redirect_uris: list[str]
    login_url: str
    jwks_url: str
    target_link_uri: str
    scopes: list[str] = field(default_factory=list)


@dataclass
class Score:
    lineitem: str
    body: dict[str, Any]
    # The whole URL the score was posted to (query string included) and its media type.
    url: str = ""
    content_type: str = ""


class ScoreLog(list[Score]):
    """The scores the LMS accepted, and what Moodle keeps beside them: the latest timestamp per
    line item and user (whole seconds), and every post it refused (status, body)."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[tuple[str, str], int] = {}
        self.refused: list[tuple[int, dict[str, Any] | None]] = []

    def clear(self) -> None:
        super().clear()
        self.latest.clear()
        self.refused.clear()


def _epoch_seconds(timestamp: object) -> int | None:
    if not isinstance(timestamp, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:  # Moodle reads a timestamp without zone in server time
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


class TestLMS:
    """One platform. `base_url` is set once it is served."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "Test LMS") -> None:
        self.name = name
        self.base_url = ""
        self.keys = [PlatformKey.generate()]
        self.tools: dict[str, ToolRegistration] = {}
        self.current_user: User | None = None
        self.lock = threading.Lock()
        self.jwks_hits = 0
        self.token_requests: list[dict[str, Any]] = []
        self.registrations: list[dict[str, Any]] = []
        self.registration_tokens: set[str] = set()
        self.scores = ScoreLog()
        # As Moodle: a score whose timestamp is not later, to the second, than the last one
        # accepted for the user and line item gets 409.
        self.enforce_score_order = True
        self.lineitems: dict[str, dict[str, Any]] = {}
        self.lineitem_requests: list[tuple[str, dict[str, str]]] = []  # (method, query)
        self.members: list[dict[str, Any]] = []
        self.members_page_size = 0
        self.nrps_requests: list[str] = []
        # When set, membership requests wait until it is set (to see who waits for them).
        self.nrps_hold: threading.Event | None = None
        # Answers for the next score posts: a status, or (status, body).
        self.score_failures: list[int | tuple[int, str]] = []
        self.issued_tokens: dict[str, float] = {}
        self.config_overrides: dict[str, Any] = {}
        self.course = {
            "id": "course-1",
            "title": "外国人支援コーディネーター養成研修 2026",
            "label": "FRSC-2026",
        }
        # People the course page can launch by `sub` (see `course_page_url`).
        self.users: dict[str, User] = {}
        # Called while serving the JWKS (a platform that itself waits on something).
        self.on_jwks: Any = None
        self.app = self._build_app()

    # --- identity ------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def signing_key(self) -> PlatformKey:
        return self.keys[-1]

    def rotate_key(self) -> PlatformKey:
        key = PlatformKey.generate()
        self.keys.append(key)
        return key

    def add_tool(
        self, tool_base_url: str, *, client_id: str | None = None, deployment_id: str = "1"
    ) -> ToolRegistration:
        reg = ToolRegistration(
            client_id=client_id or "client-" + secrets.token_hex(4),
            deployment_id=deployment_id,
            redirect_uris=[tool_base_url + "/lti/launch"],
            login_url=tool_base_url + "/lti/login",
            jwks_url=tool_base_url + "/lti/jwks",
            target_link_uri=tool_base_url + "/lti/launch",
        )
        self.tools[reg.client_id] = reg
        return reg

    def course_page_url(self, reg: ToolRegistration, user: User, *, locale: str = "ja") -> str:
        """The course page that shows the tool in an iframe and launches it there as `user`."""
        self.users[user.sub] = user
        role = user.roles[0].rsplit("#", 1)[-1] if user.roles else ""
        return (
            self.base_url
            + "/course-page?"
            + urlencode(
                {"client_id": reg.client_id, "sub": user.sub, "role": role, "locale": locale}
            )
        )

    # --- messages ------------------------------------------------------------------------------

    def login_params(
        self,
        reg: ToolRegistration,
        user: User,
        *,
        message_hint: str | None = None,
        target_link_uri: str | None = None,
    ) -> dict[str, str]:
        """What the platform auto-posts to the tool's login initiation URL."""
        self.current_user = user
        if target_link_uri is None and message_hint:
            # A hint naming the activity's URL (a deep-linked item's `url`) sends it here too.
            hinted = json.loads(message_hint)
            target_link_uri = hinted.get("target_link_uri") if isinstance(hinted, dict) else None
        return {
            "iss": self.issuer,
            "login_hint": user.sub,
            "target_link_uri": target_link_uri or reg.target_link_uri,
            "lti_message_hint": message_hint or json.dumps({"launch": uuid.uuid4().hex}),
            "client_id": reg.client_id,
            "lti_deployment_id": reg.deployment_id,
        }

    def claims(
        self,
        reg: ToolRegistration,
        user: User,
        nonce: str,
        *,
        message_type: str = "LtiResourceLinkRequest",
        context: bool = True,
        resource_link_id: str = "rl-1",
        locale: str = "ja",
        with_ags: bool = True,
        with_nrps: bool = True,
        with_lineitem: bool = True,
        custom: dict[str, str] | None = None,
        target_link_uri: str | None = None,
        course: dict[str, str] | None = None,
        dl_data: str | None = "dl-data-123",
        accept_multiple: bool = True,
    ) -> dict[str, Any]:
        now = int(time.time())
        course = {**self.course, **(course or {})}
        memberships_url = self.base_url + f"/nrps/{course['id']}"
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": reg.client_id,
            "sub": user.sub,
            "exp": now + 60,
            "iat": now,
            "nonce": nonce,
            LTI + "message_type": message_type,
            LTI + "version": "1.3.0",
            LTI + "deployment_id": reg.deployment_id,
            LTI + "target_link_uri": target_link_uri or reg.target_link_uri,
            LTI + "roles": list(user.roles),
            LTI + "launch_presentation": {
                "locale": locale,
                "document_target": "iframe",
                "return_url": self.base_url + "/course",
            },
            LTI + "tool_platform": {
                "guid": "test-lms",
                "name": self.name,
                "version": "2024100706",
                "product_family_code": "testlms",
            },
            LTI + "custom": {"context_memberships_url": memberships_url, **(custom or {})},
        }
        for claim in ("name", "given_name", "family_name", "email"):
            if getattr(user, claim) is not None:
                body[claim] = getattr(user, claim)
        if context:
            body[LTI + "context"] = {**course, "type": ["CourseSection"]}
        if message_type == "LtiResourceLinkRequest":
            body[LTI + "resource_link"] = {"id": resource_link_id, "title": "Module A"}
            if with_ags:
                body[AGS] = {
                    "scope": [
                        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                    ],
                    "lineitems": self.base_url + f"/ags/{course['id']}/lineitems?type_id=1",
                }
                if with_lineitem:
                    body[AGS]["lineitem"] = (
                        self.base_url
                        + f"/ags/{course['id']}/lineitems/{resource_link_id}/lineitem?type_id=1"
                    )
        if message_type == "LtiDeepLinkingRequest":
            body[DL + "deep_linking_settings"] = {
                "deep_link_return_url": self.base_url + "/deep-link-return",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": accept_multiple,
            }
            if dl_data is not None:
                body[DL + "deep_linking_settings"]["data"] = dl_data
        if with_nrps and context:
            body[NRPS] = {
                "context_memberships_url": memberships_url,
                "service_versions": ["2.0"],
            }
        return body

    def sign(
        self,
        body: dict[str, Any],
        *,
        key: PlatformKey | None = None,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
    ) -> str:
        key = key or self.signing_key
        hdr = {"kid": key.kid, **(headers or {})}
        if algorithm == "RS256":
            return jwt.encode(body, key.private_pem, algorithm="RS256", headers=hdr)
        raise ValueError(algorithm)

    # --- HTTP ----------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("test_lms")

        @app.get("/jwks")
        def jwks() -> Response:
            with self.lock:
                self.jwks_hits += 1
            if self.on_jwks is not None:
                self.on_jwks()
            return jsonify({"keys": [key.jwk() for key in self.keys]})

        @app.get("/.well-known/openid-configuration")
        def openid_configuration() -> Response:
            document = {
                "issuer": self.issuer,
                "authorization_endpoint": self.base_url + "/auth",
                "token_endpoint": self.base_url + "/token",
                "jwks_uri": self.base_url + "/jwks",
                "registration_endpoint": self.base_url + "/register",
                "scopes_supported": [
                    "openid",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
                ],
                "response_types_supported": ["id_token"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                    "product_family_code": "testlms",
                    "version": "1.0",
                    "messages_supported": [
                        {"type": "LtiResourceLinkRequest"},
                        {"type": "LtiDeepLinkingRequest"},
                    ],
                },
            }
            document.update(self.config_overrides)
            return jsonify(document)

        @app.post("/register")
        def register() -> Response:
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            if token not in self.registration_tokens:
                return jsonify({"error": "invalid registration token"}), 401
            self.registration_tokens.discard(token)
            body = request.get_json(force=True)
            self.registrations.append(body)
            # What Moodle requires of a registration (MOODLE.md, Dynamic Registration).
            tool_conf = body.get("https://purl.imsglobal.org/spec/lti-tool-configuration", {})
            problems = []
            if "id_token" not in body.get("response_types", []):
                problems.append("response_types")
            if not isinstance(body.get("redirect_uris"), list):
                problems.append("redirect_uris")
            if body.get("token_endpoint_auth_method") != "private_key_jwt":
                problems.append("token_endpoint_auth_method")
            if body.get("application_type", "web") != "web":
                problems.append("application_type")
            if tool_conf.get("domain") != urlsplit(tool_conf.get("target_link_uri", "")).netloc:
                problems.append("domain")
            if problems:
                return jsonify({"error": "invalid_client_metadata", "fields": problems}), 400
            reg = ToolRegistration(
                client_id="dr-" + secrets.token_hex(4),
                deployment_id=str(len(self.tools) + 1),
                redirect_uris=body["redirect_uris"],
                login_url=body["initiate_login_uri"],
                jwks_url=body["jwks_uri"],
                target_link_uri=tool_conf["target_link_uri"],
                scopes=body.get("scope", "").split(),
            )
            self.tools[reg.client_id] = reg
            answer = dict(body)
            answer["client_id"] = reg.client_id
            answer["https://purl.imsglobal.org/spec/lti-tool-configuration"] = {
                **tool_conf,
                "deployment_id": reg.deployment_id,
            }
            return jsonify(answer)

        @app.get("/auth")
        def auth() -> Response:
            args = request.args
            reg = self.tools.get(args.get("client_id", ""))
            errors = []
            if reg is None:
                errors.append("client_id")
            elif args.get("redirect_uri") not in reg.redirect_uris:
                errors.append("redirect_uri")
            if args.get("scope") != "openid":
                errors.append("scope")
            if args.get("response_type") != "id_token":
                errors.append("response_type")
            if args.get("response_mode") != "form_post":
                errors.append("response_mode")
            if args.get("prompt") not in ("none", "", None):
                errors.append("prompt")
            if not args.get("nonce") or not args.get("state"):
                errors.append("nonce/state")
            user = self.current_user
            if user is None or args.get("login_hint") != user.sub:
                errors.append("login_hint")
            if errors:
                return Response("Invalid request: " + ", ".join(errors), status=400)
            assert reg is not None and user is not None
            hint = json.loads(args.get("lti_message_hint") or "{}")
            body = self.claims(
                reg,
                user,
                args["nonce"],
                message_type=hint.get("message_type", "LtiResourceLinkRequest"),
                resource_link_id=hint.get("resource_link_id", "rl-1"),
                context=hint.get("context", True),
                locale=hint.get("locale", "ja"),
                with_lineitem=hint.get("lineitem", True),
                custom=hint.get("custom"),
                target_link_uri=hint.get("target_link_uri"),
                course=hint.get("course"),
                dl_data=hint.get("data", "dl-data-123"),
                accept_multiple=hint.get("accept_multiple", True),
            )
            return Response(
                self.form_post(
                    args["redirect_uri"], {"id_token": self.sign(body), "state": args["state"]}
                ),
                content_type="text/html",
            )

        @app.post("/token")
        def token() -> Response:
            if request.mimetype != "application/x-www-form-urlencoded":
                return jsonify({"error": "invalid_request"}), 400
            form = request.form
            self.token_requests.append(dict(form))
            if (
                form.get("grant_type") != "client_credentials"
                or form.get("client_assertion_type")
                != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ):
                return jsonify({"error": "invalid_request"}), 400
            assertion = form.get("client_assertion", "")
            try:
                unverified = jwt.decode(assertion, options={"verify_signature": False})
                reg = self.tools[unverified["iss"]]
                keyset = requests.get(reg.jwks_url, timeout=5).json()
                header = jwt.get_unverified_header(assertion)
                jwk = next(k for k in keyset["keys"] if k["kid"] == header["kid"])
                jwt.decode(
                    assertion,
                    jwt.PyJWK(jwk).key,
                    algorithms=["RS256"],
                    audience=self.base_url + "/token",
                )
            except Exception as exc:
                return jsonify({"error": "invalid_client", "detail": str(exc)}), 401
            granted = [
                s for s in form.get("scope", "").split() if s in reg.scopes or not reg.scopes
            ]
            access = secrets.token_urlsafe(16)
            self.issued_tokens[access] = time.time() + 3600
            return jsonify(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": " ".join(granted),
                }
            )

        def _authorised() -> None:
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            if self.issued_tokens.get(token, 0) < time.time():
                abort(401)

        @app.get("/nrps/<course_id>")
        def nrps(course_id: str) -> Response:
            _authorised()
            self.nrps_requests.append(request.url)
            hold = self.nrps_hold
            if hold is not None:
                hold.wait(30)
            offset = int(request.args.get("offset", "0"))
            size = self.members_page_size or len(self.members) or 1
            page = self.members[offset : offset + size]
            response = jsonify({"id": request.url, "context": {"id": course_id}, "members": page})
            if offset + size < len(self.members):
                next_url = (
                    self.base_url + f"/nrps/{course_id}?" + urlencode({"offset": offset + size})
                )
                response.headers["Link"] = f'<{next_url}>; rel="next"'
            response.content_type = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
            return response

        @app.route("/ags/<course_id>/lineitems", methods=["GET", "POST"])
        def lineitems(course_id: str) -> Response:
            _authorised()
            self.lineitem_requests.append((request.method, dict(request.args)))
            if request.method == "POST":
                item = request.get_json(force=True)
                item_id = (
                    self.base_url
                    + f"/ags/{course_id}/lineitems/{uuid.uuid4().hex}/lineitem?type_id=1"
                )
                item["id"] = item_id
                self.lineitems[item_id] = item
                return jsonify(item), 201
            items = list(self.lineitems.values())
            for key in ("resource_link_id", "resource_id", "tag"):
                if key in request.args:
                    camel = {
                        "resource_link_id": "resourceLinkId",
                        "resource_id": "resourceId",
                        "tag": "tag",
                    }[key]
                    items = [i for i in items if i.get(camel) == request.args[key]]
            return jsonify(items)

        @app.post("/ags/<course_id>/lineitems/<item>/lineitem/scores")
        def scores(course_id: str, item: str) -> Response:
            _authorised()
            if request.args.get("type_id") != "1":
                return Response("type_id lost", status=400)
            body = request.get_json(force=True)
            with self.lock:
                if self.score_failures:
                    failure = self.score_failures.pop(0)
                    status, text = (
                        failure if isinstance(failure, tuple) else (failure, "failure injected")
                    )
                    self.scores.refused.append((status, body))
                    return Response(text, status=status)
                key = (request.base_url.removesuffix("/scores"), str(body.get("userId")))
                stamp = _epoch_seconds(body.get("timestamp"))
                if stamp is None:
                    self.scores.refused.append((400, body))
                    return Response("timestamp missing or invalid", status=400)
                latest = self.scores.latest.get(key) if self.enforce_score_order else None
                if latest is not None and stamp <= latest:
                    self.scores.refused.append((409, body))
                    return Response("", status=409)
                self.scores.latest[key] = stamp
                self.scores.append(
                    Score(
                        lineitem=request.base_url,
                        body=body,
                        url=request.url,
                        content_type=request.content_type or "",
                    )
                )
            return Response("", status=200)

        def _course_user() -> tuple[ToolRegistration, User, str]:
            reg = self.tools.get(request.args.get("client_id", ""))
            sub = request.args.get("sub", "")
            if reg is None or not sub:
                abort(404)
            known = self.users.get(sub)
            role = request.args.get("role", "")
            roles = [MEMBERSHIP + role] if role else (known.roles if known else [])
            user = User(
                sub=sub,
                roles=roles,
                name=known.name if known else None,
                given_name=known.given_name if known else None,
                family_name=known.family_name if known else None,
                email=known.email if known else None,
            )
            return reg, user, request.args.get("locale", "ja")

        @app.get("/course-page")
        def course_page() -> Response:
            """The course page with the tool embedded (Moodle's "embed, without blocks")."""
            _reg, _user, locale = _course_user()
            lang = "ja" if locale.startswith("ja") else "en"
            frame_src = "/launch-frame?" + urlencode(request.args)
            page = (
                f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
                f"<title>{html.escape(self.course['title'])}: Tsunagu</title>"
                "<style>body{margin:0;font-family:sans-serif}header{padding:.5rem 1rem;"
                "background:#333;color:#fff}main{padding:1rem}"
                "iframe{width:100%;height:600px;border:1px solid #999}</style></head><body>"
                f"<header><p>{html.escape(self.name)}</p></header>"
                f'<main id="region-main"><h1>{html.escape(self.course["title"])}</h1>'
                f'<iframe id="contentframe" name="contentframe" title="Tsunagu" '
                f'src="{html.escape(frame_src)}"></iframe></main></body></html>'
            )
            return Response(page, content_type="text/html; charset=utf-8")

        @app.get("/launch-frame")
        def launch_frame() -> Response:
            """Inside the frame: the LMS's launch page auto-posts the login initiation."""
            reg, user, locale = _course_user()
            params = self.login_params(
                reg, user, message_hint=json.dumps({"launch": uuid.uuid4().hex, "locale": locale})
            )
            return Response(
                self.form_post(reg.login_url, params), content_type="text/html; charset=utf-8"
            )

        @app.get("/favicon.ico")
        def favicon() -> Response:
            return Response("", status=204)

        @app.get("/cookie-probe")
        def cookie_probe() -> Response:
            """Whether this browser keeps an unpartitioned third-party cookie: framed from another
            site, the first load sets `probe` (`SameSite=None; Secure`), a reload reports whether it
            came back, in the page (`#probe`) and as a JSON-ish text."""
            kept = request.cookies.get("probe") == "1"
            response = Response(
                '<!doctype html><html lang="en"><head><title>probe</title></head><body>'
                f'<p id="probe">{"kept" if kept else "absent"}</p></body></html>',
                content_type="text/html; charset=utf-8",
            )
            response.set_cookie("probe", "1", secure=True, samesite="None", httponly=True)
            return response

        @app.get("/deep-link-return")
        def deep_link_return() -> Response:
            return Response("use POST", status=405)

        @app.post("/deep-link-return")
        def deep_link_post() -> Response:
            self.deep_link_responses.append(request.form.get("JWT", ""))
            return Response("<p>content selected</p>", content_type="text/html")

        self.deep_link_responses: list[str] = []
        return app

    @staticmethod
    def form_post(action: str, fields: dict[str, str]) -> str:
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in fields.items()
        )
        return (
            f'<!doctype html><html lang="en"><head><title>Launching</title></head><body>'
            f'<form id="f" method="post" action="{html.escape(action)}">{inputs}'
            f'<noscript><button type="submit">Continue</button></noscript></form>'
            f'<script>document.getElementById("f").submit()</script></body></html>'
        )


def parse_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of an auto-posting form (what a browser would submit)."""
    from html.parser import HTMLParser

    found: dict[str, Any] = {"action": "", "fields": {}}

    class _Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "form":
                found["action"] = values.get("action") or ""
            if tag == "input" and values.get("name"):
                found["fields"][values["name"]] = values.get("value") or ""

    _Parser().feed(page)
    return found["action"], found["fields"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
