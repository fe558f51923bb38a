"""The `lti-tool` command against the test database: platforms, keys and database upkeep, and
what a change made with it does to launches."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import delete, func, select

from lti_tool.cli import CliContext, main
from lti_tool.config import Config
from lti_tool.db import Database, utcnow
from lti_tool.lti.keys import signing_key
from lti_tool.lti.models import Platform, PlatformStatus, ToolKey, UsedLoginState
from tests.conftest import SECRET
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, ToolRegistration, User

Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def _db_up_front(db: Database) -> None:
    """conftest's cleanup looks `db` up at teardown, which pytest 9 refuses unless it is active."""


@pytest.fixture
def cli(app: Flask, database_url: str, tmp_path: Path) -> Cli:
    """Run `lti-tool ARGS...` as an admin would, configured only through the environment."""
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "TOOL_BASE_URL": app.extensions["tsunagu.config"].tool_base_url,
    }

    def run(*args: str) -> Result:
        context = CliContext()
        try:
            return CliRunner(env=env).invoke(main, list(args), obj=context)
        finally:
            if context._db is not None:  # each run is a process of its own: close its pool
                context._db.engine.dispose()

    return run


@pytest.fixture
def tool_keys(db: Database) -> Iterator[Database]:
    """Put the tool's keys back as they were: the session-wide app signs with them."""
    columns = [c.key for c in ToolKey.__table__.columns]
    with db.session_scope() as session:
        before = [{c: getattr(k, c) for c in columns} for k in session.scalars(select(ToolKey))]
    yield db
    with db.session_scope() as session:
        session.execute(delete(ToolKey))
        session.add_all(ToolKey(**row) for row in before)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.output


def added_id(output: str) -> int:
    # "added platform 7" / "updated platform 7"
    return int(output.split()[-1])


@pytest.fixture
def registered(app: Flask, lms: TestLMS, cli: Cli) -> tuple[ToolRegistration, int]:
    """The test LMS registered by hand, with `platforms add`."""
    reg = lms.add_tool(app.extensions["tsunagu.config"].tool_base_url, deployment_id="1")
    output = ok(
        cli(
            "platforms",
            "add",
            "--issuer",
            lms.issuer,
            "--client-id",
            reg.client_id,
            "--auth-login-url",
            lms.base_url + "/auth",
            "--jwks-url",
            lms.base_url + "/jwks",
            "--auth-token-url",
            lms.base_url + "/token",
            "--name",
            "Test Moodle",
            "--deployment",
            "1",
        )
    )
    assert output.startswith("added platform ")
    return reg, added_id(output)


# --- platforms --------------------------------------------------------------------------------


def test_platforms_list_when_empty(cli):
    assert ok(cli("platforms", "list")).strip() == "no platforms registered"


def test_platforms_add_with_deployments_then_list(cli, db):
    output = ok(
        cli(
            "platforms",
            "add",
            "--issuer",
            "https://moodle.example.jp",
            "--client-id",
            "abc123",
            "--auth-login-url",
            "https://moodle.example.jp/mod/lti/auth.php",
            "--jwks-url",
            "https://moodle.example.jp/mod/lti/certs.php",
            "--deployment",
            "4",
            "--deployment",
            "7",
        )
    )
    platform_id = added_id(output)
    listing = ok(cli("platforms", "list"))
    [line] = listing.splitlines()
    assert line.split()[0] == str(platform_id)
    assert "active" in line and "manual" in line
    assert "https://moodle.example.jp" in line and "client_id=abc123" in line
    assert "deployments=4, 7" in line
    with db.session_scope() as session:
        platform = session.get(Platform, platform_id)
        assert platform is not None
        assert platform.name == "moodle.example.jp"  # the issuer's host when no --name
        assert platform.auth_token_url is None


def test_platforms_add_again_updates(cli, db):
    args = [
        "platforms",
        "add",
        "--issuer",
        "https://moodle.example.jp",
        "--client-id",
        "abc",
        "--auth-login-url",
        "https://moodle.example.jp/auth",
        "--jwks-url",
        "https://moodle.example.jp/certs",
    ]
    first = added_id(ok(cli(*args, "--deployment", "1")))
    output = ok(cli(*args[:-1], "https://moodle.example.jp/certs-v2", "--deployment", "2"))
    assert output.strip() == f"updated platform {first}"
    with db.session_scope() as session:
        [platform] = session.scalars(select(Platform))
        assert platform.jwks_url == "https://moodle.example.jp/certs-v2"
        assert [d.deployment_id for d in platform.deployments] == ["1", "2"]


def test_platforms_add_deployment(cli, registered):
    _, platform_id = registered
    output = ok(cli("platforms", "add-deployment", str(platform_id), "course-42"))
    assert "'course-42'" in output
    ok(cli("platforms", "add-deployment", str(platform_id), "course-42"))  # idempotent
    assert "deployments=1, course-42" in ok(cli("platforms", "list"))


def test_platforms_add_deployment_to_no_platform(cli):
    result = cli("platforms", "add-deployment", "999999", "1")
    assert result.exit_code == 1
    assert "no platform 999999" in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--issuer", "moodle.example.jp"),
        ("--auth-login-url", "javascript:alert(1)"),
        ("--jwks-url", "ftp://moodle.example.jp/certs"),
        ("--auth-token-url", "/mod/lti/token.php"),
    ],
)
def test_platforms_add_refuses_a_bad_url(cli, db, option, value):
    options = {
        "--issuer": "https://moodle.example.jp",
        "--client-id": "abc",
        "--auth-login-url": "https://moodle.example.jp/auth",
        "--jwks-url": "https://moodle.example.jp/certs",
        "--auth-token-url": "https://moodle.example.jp/token",
    }
    options[option] = value
    result = cli("platforms", "add", *[part for pair in options.items() for part in pair])
    assert result.exit_code == 2
    assert "is not an http(s) URL" in result.output
    assert option in result.output
    assert "Traceback" not in result.output
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Platform)) == 0


def test_platforms_add_requires_the_urls(cli):
    result = cli("platforms", "add", "--issuer", "https://moodle.example.jp", "--client-id", "a")
    assert result.exit_code == 2
    assert "--auth-login-url" in result.output


def test_disabled_platform_refuses_login_and_launch(
    cli, registered, browser: Browser, learner: User
):
    reg, platform_id = registered
    browser.http.headers["Accept-Language"] = "en"  # the refusals below are read in English
    assert browser.launch(reg, learner).status_code == 200
    started = browser.login(reg, learner)  # a login begun before the platform is disabled

    assert ok(cli("platforms", "disable", str(platform_id))).strip() == (
        f"platform {platform_id} disabled"
    )
    assert "disabled" in ok(cli("platforms", "list"))

    action, fields = browser.authorize(started)
    launch = browser.post_launch(fields, action)
    assert launch.status_code == 403
    assert "disabled" in launch.text
    login = browser.http.post(
        reg.login_url,
        data=browser.lms.login_params(reg, learner),
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 403
    assert "disabled" in login.text

    ok(cli("platforms", "enable", str(platform_id)))
    assert browser.launch(reg, learner).status_code == 200


@pytest.mark.parametrize("command", ["disable", "enable", "remove"])
def test_platform_commands_on_no_platform(cli, command):
    result = cli("platforms", command, "999999")
    assert result.exit_code == 1
    assert "no platform 999999" in result.output


def test_remove_refuses_a_platform_with_learner_records(cli, db, registered, browser, learner):
    reg, platform_id = registered
    browser.launch(reg, learner)
    result = cli("platforms", "remove", str(platform_id))
    assert result.exit_code == 1
    assert "1 courses and 1 people" in result.output
    assert f"lti-tool platforms disable {platform_id}" in result.output
    with db.session_scope() as session:
        platform = session.get(Platform, platform_id)
        assert platform is not None and platform.status == PlatformStatus.ACTIVE


def test_remove_deletes_a_platform_without_records(cli, db, registered):
    _, platform_id = registered
    assert ok(cli("platforms", "remove", str(platform_id))).strip() == (
        f"platform {platform_id} removed"
    )
    assert ok(cli("platforms", "list")).strip() == "no platforms registered"
    with db.session_scope() as session:
        assert session.get(Platform, platform_id) is None


def test_platforms_show_prints_the_urls_and_the_public_key(app, cli, db):
    base = app.extensions["tsunagu.config"].tool_base_url
    output = ok(cli("platforms", "show"))
    lines = [line.strip() for line in output.splitlines()]
    for path in ("/lti/register", "/lti/login", "/lti/launch", "/lti/jwks"):
        assert base + path in lines
    assert base.removeprefix("http://") in lines  # the domain
    jwk = json.loads(lines[lines.index("Public key (JWK):") + 1])
    with db.session_scope() as session:
        assert jwk["kid"] == signing_key(session, SECRET).kid
    assert {"kty", "n", "e", "kid", "alg", "use"} <= jwk.keys()
    assert "d" not in jwk


# --- keys -------------------------------------------------------------------------------------


def test_keys_rotate_and_list(app, cli, db, tool_keys):
    with db.session_scope() as session:
        old_kid = signing_key(session, SECRET).kid
    output = ok(cli("keys", "rotate", "--grace-days", "3"))
    assert output.startswith("new signing key ") and "retire in 3 days" in output
    new_kid = output.split()[3].rstrip(";")

    listing = ok(cli("keys", "list")).splitlines()
    by_kid = {line.split()[0]: line for line in listing}
    assert "active" in by_kid[new_kid] and "retires -" in by_kid[new_kid]
    retire_on = (utcnow() + dt.timedelta(days=3)).date().isoformat()
    assert "retiring" in by_kid[old_kid] and f"retires {retire_on}" in by_kid[old_kid]
    assert listing[-1].startswith(new_kid)  # newest last

    jwks = requests.get(
        app.extensions["tsunagu.config"].tool_base_url + "/lti/jwks", timeout=5
    ).json()
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
    with db.session_scope() as session:
        assert signing_key(session, SECRET).kid == new_kid


def test_keys_rotate_refuses_a_grace_out_of_range(cli, tool_keys):
    result = cli("keys", "rotate", "--grace-days", "400")
    assert result.exit_code == 2
    assert "--grace-days" in result.output


def test_keys_ensure_keeps_the_existing_key(cli, db):
    with db.session_scope() as session:
        kid = signing_key(session, SECRET).kid
    assert ok(cli("keys", "ensure")).strip() == f"signing with key {kid}"


# --- database ---------------------------------------------------------------------------------


def test_db_prune_removes_expired_states_and_retired_keys(cli, db, reg, tool_keys):
    now = utcnow()
    with db.session_scope() as session:
        platform_id = session.scalars(select(Platform.id)).one()
        for key, expires in (
            ("expired", now - dt.timedelta(minutes=1)),
            ("current", now + dt.timedelta(minutes=5)),
        ):
            session.add(UsedLoginState(key=key, platform_id=platform_id, expires_at=expires))
    ok(cli("keys", "rotate", "--grace-days", "0"))

    assert ok(cli("db", "prune")).strip() == "pruned 1 spent login states, 1 retired keys"

    with db.session_scope() as session:
        assert list(session.scalars(select(UsedLoginState.key))) == ["current"]
        assert session.scalar(select(func.count()).select_from(ToolKey)) >= 1
        signing_key(session, SECRET)
    assert ok(cli("db", "prune")).strip() == "pruned 0 spent login states, 0 retired keys"


def test_db_upgrade_is_idempotent(cli):
    assert ok(cli("db", "upgrade")).strip() == "database at head"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REGISTRATION_CACHE_SECONDS", "soon", "REGISTRATION_CACHE_SECONDS must be a number"),
        ("REGISTRATION_CACHE_SECONDS", "-1", "between 0 and 3600 seconds"),
        ("PORT", "http", "PORT must be a TCP port number"),
    ],
)
def test_bad_configuration_is_named_not_a_traceback(
    app: Flask, database_url: str, tmp_path: Path, name: str, value: str, message: str
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        name: value,
    }
    result = CliRunner(env=env).invoke(main, ["platforms", "list"], obj=CliContext())
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_registration_cache_seconds_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRATION_CACHE_SECONDS", "12.5")
    monkeypatch.setenv("SECRET_KEY", SECRET)
    assert Config.from_env().registration_cache_ttl == 12.5
    monkeypatch.delenv("REGISTRATION_CACHE_SECONDS")
    assert Config.from_env().registration_cache_ttl == 5.0


def test_serve_migrates_and_execs_gunicorn_as_documented(cli, monkeypatch):
    """`make run` and the Dockerfile serve through `lti-tool serve`: gunicorn gthread, the
    workers of WEB_CONCURRENCY with 4 threads each, heartbeat files in memory."""
    launched: list[list[str]] = []

    def fake_exec(_file: str, argv: list[str]) -> None:
        launched.append(argv)

    monkeypatch.setattr("lti_tool.cli.os.execvp", fake_exec)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    output = ok(cli("serve"))
    assert "Dynamic Registration URL" in output
    [argv] = launched
    options = dict(zip(argv[3:-1:2], argv[4:-1:2], strict=True))
    assert argv[1:3] == ["-m", "gunicorn"] and argv[-1] == "lti_tool.wsgi:app"
    assert options["--workers"] == "3" and options["--worker-class"] == "gthread"
    assert options["--threads"] == "4"
    assert options.get("--worker-tmp-dir") == "/dev/shm"
