"""The `lti-tool` command: serve, database, keys and platform registrations."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import click
from sqlalchemy import func, select

from lti_tool.config import PROJECT_ROOT, Config
from lti_tool.db import Database


class CliContext:
    def __init__(self) -> None:
        self._config: Config | None = None
        self._db: Database | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = Config.from_env()
            except ValueError as exc:
                raise click.ClickException(f"configuration: {exc}") from None
        return self._config

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.config.database_url)
        return self._db


pass_ctx = click.make_pass_decorator(CliContext, ensure=True)


@click.group()
def main() -> None:
    """Tsunagu LTI tool administration."""


# --- database ---------------------------------------------------------------------------------


def alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config as AlembicConfig

    candidates = [
        os.environ.get("ALEMBIC_CONFIG"),
        PROJECT_ROOT / "alembic.ini",
        Path.cwd() / "alembic.ini",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            cfg = AlembicConfig(str(candidate))
            cfg.set_main_option("script_location", str(Path(candidate).parent / "migrations"))
            cfg.attributes["database_url"] = database_url
            return cfg
    raise click.ClickException("alembic.ini not found: run from the project folder")


def upgrade_database(database_url: str, revision: str = "head") -> None:
    from alembic import command

    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_ctx
def db_upgrade(ctx: CliContext, revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    upgrade_database(ctx.config.database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(ctx: CliContext, revision: str) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from alembic import command

    command.downgrade(alembic_config(ctx.config.database_url), revision)
    click.echo(f"database at {revision}")


@db.command("prune")
@pass_ctx
def db_prune(ctx: CliContext) -> None:
    """Forget spent login states past their expiry, and keys past their retirement."""
    from lti_tool.db import Direct
    from lti_tool.lti.keys import prune_retired
    from lti_tool.lti.state import prune_used_states

    with ctx.db.session_scope() as session:
        states = prune_used_states(Direct.within(session))
        keys_removed = prune_retired(session)
    click.echo(f"pruned {states} spent login states, {keys_removed} retired keys")


# --- keys -------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The tool's signing keys (published at /lti/jwks)."""


@keys.command("ensure")
@pass_ctx
def keys_ensure(ctx: CliContext) -> None:
    """Generate the first signing key if there is none."""
    from lti_tool.lti.keys import ensure_key

    with ctx.db.session_scope() as session:
        key, created = ensure_key(session, ctx.config.secret_key)
        kid = key.kid
    click.echo(f"{'generated' if created else 'signing with'} key {kid}")


@keys.command("rotate")
@click.option(
    "--grace-days",
    type=click.IntRange(0, 365),
    default=7,
    show_default=True,
    help="How long the old keys stay in the JWKS.",
)
@pass_ctx
def keys_rotate(ctx: CliContext, grace_days: int) -> None:
    """Add a new signing key; the old ones retire after the grace period."""
    from lti_tool.lti.keys import rotate_keys

    with ctx.db.session_scope() as session:
        key = rotate_keys(session, ctx.config.secret_key, dt.timedelta(days=grace_days))
        kid = key.kid
    click.echo(f"new signing key {kid}; previous keys retire in {grace_days} days")


@keys.command("list")
@pass_ctx
def keys_list(ctx: CliContext) -> None:
    """List the keys, newest last."""
    from lti_tool.lti.keys import list_keys

    with ctx.db.session_scope() as session:
        for key in list_keys(session):
            retire = key.retire_after.isoformat(timespec="seconds") if key.retire_after else "-"
            click.echo(
                f"{key.kid}  {key.status.value:9}  "
                f"created {key.created_at:%Y-%m-%d}  retires {retire}"
            )


# --- platforms --------------------------------------------------------------------------------


@main.group()
def platforms() -> None:
    """Platform (LMS) registrations."""


@platforms.command("add")
@click.option("--issuer", required=True, help="The platform's issuer (Moodle: its wwwroot).")
@click.option("--client-id", required=True)
@click.option("--auth-login-url", required=True, help="OIDC authentication request URL.")
@click.option("--jwks-url", required=True, help="The platform's public keyset URL.")
@click.option(
    "--auth-token-url", default=None, help="OAuth2 access token URL (for grades, roster)."
)
@click.option("--audience", default=None, help="Token audience, when not the token URL.")
@click.option("--name", default=None, help="A name for admins (default: the issuer's host).")
@click.option("--deployment", "deployments", multiple=True, help="A deployment id (repeatable).")
@pass_ctx
def platforms_add(
    ctx: CliContext,
    issuer: str,
    client_id: str,
    auth_login_url: str,
    jwks_url: str,
    auth_token_url: str | None,
    audience: str | None,
    name: str | None,
    deployments: tuple[str, ...],
) -> None:
    """Register a platform that has no Dynamic Registration."""
    from urllib.parse import urlsplit

    from lti_tool.lti.models import RegisteredVia
    from lti_tool.lti.registration import save_platform

    for label, value in (
        ("--issuer", issuer),
        ("--auth-login-url", auth_login_url),
        ("--jwks-url", jwks_url),
        ("--auth-token-url", auth_token_url),
    ):
        if value is not None and not value.startswith(("https://", "http://")):
            raise click.BadParameter(f"{value!r} is not an http(s) URL", param_hint=label)
    with ctx.db.session_scope() as session:
        result = save_platform(
            session,
            issuer=issuer,
            client_id=client_id,
            name=name or urlsplit(issuer).netloc,
            auth_login_url=auth_login_url,
            auth_token_url=auth_token_url,
            auth_audience=audience,
            jwks_url=jwks_url,
            product_family_code=None,
            deployment_ids=list(deployments),
            registered_via=RegisteredVia.MANUAL,
        )
        platform_id = result.platform.id
    click.echo(f"{'added' if result.created else 'updated'} platform {platform_id}")


@platforms.command("add-deployment")
@click.argument("platform_id", type=int)
@click.argument("deployment_id")
@pass_ctx
def platforms_add_deployment(ctx: CliContext, platform_id: int, deployment_id: str) -> None:
    """Add a deployment id to a registration."""
    from lti_tool.lti.models import Platform
    from lti_tool.lti.registration import add_deployment

    with ctx.db.session_scope() as session:
        platform = session.get(Platform, platform_id)
        if platform is None:
            raise click.ClickException(f"no platform {platform_id}")
        add_deployment(session, platform, deployment_id)
    click.echo(f"deployment {deployment_id!r} added to platform {platform_id}")


@platforms.command("list")
@pass_ctx
def platforms_list(ctx: CliContext) -> None:
    """List registrations."""
    from lti_tool.lti.models import Platform

    with ctx.db.session_scope() as session:
        rows = list(session.scalars(select(Platform).order_by(Platform.id)))
        if not rows:
            click.echo("no platforms registered")
        for p in rows:
            deployments = ", ".join(d.deployment_id for d in p.deployments) or "-"
            click.echo(
                f"{p.id:>3}  {p.status.value:8}  {p.registered_via.value:7}  {p.issuer}  "
                f"client_id={p.client_id}  deployments={deployments}"
            )


def _set_status(ctx: CliContext, platform_id: int, active: bool) -> None:
    from lti_tool.lti.models import Platform, PlatformStatus

    with ctx.db.session_scope() as session:
        platform = session.get(Platform, platform_id)
        if platform is None:
            raise click.ClickException(f"no platform {platform_id}")
        platform.status = PlatformStatus.ACTIVE if active else PlatformStatus.DISABLED
    click.echo(f"platform {platform_id} {'enabled' if active else 'disabled'}")


@platforms.command("disable")
@click.argument("platform_id", type=int)
@pass_ctx
def platforms_disable(ctx: CliContext, platform_id: int) -> None:
    """Refuse launches from a registration (its records stay)."""
    _set_status(ctx, platform_id, active=False)


@platforms.command("enable")
@click.argument("platform_id", type=int)
@pass_ctx
def platforms_enable(ctx: CliContext, platform_id: int) -> None:
    """Accept launches from a disabled registration again."""
    _set_status(ctx, platform_id, active=True)


@platforms.command("remove")
@click.argument("platform_id", type=int)
@pass_ctx
def platforms_remove(ctx: CliContext, platform_id: int) -> None:
    """Delete a registration that has no learner records (else: disable it)."""
    from lti_tool.identity.models import Course, Person
    from lti_tool.lti.models import Deployment, Platform

    with ctx.db.session_scope() as session:
        platform = session.get(Platform, platform_id)
        if platform is None:
            raise click.ClickException(f"no platform {platform_id}")
        courses = session.scalar(
            select(func.count())
            .select_from(Course)
            .join(Deployment)
            .where(Deployment.platform_id == platform_id)
        )
        people = session.scalar(
            select(func.count()).select_from(Person).where(Person.platform_id == platform_id)
        )
        if courses or people:
            raise click.ClickException(
                f"platform {platform_id} has {courses} courses and {people} people on record; "
                "learner records are never deleted this way. Use `lti-tool platforms disable "
                f"{platform_id}` instead."
            )
        session.delete(platform)
    click.echo(f"platform {platform_id} removed")


@platforms.command("show")
@pass_ctx
def platforms_show(ctx: CliContext) -> None:
    """Print every URL an admin types into a manual registration, and the tool's public key."""
    from lti_tool.lti.keys import ensure_key
    from lti_tool.lti.registration import ToolUrls

    urls = ToolUrls(ctx.config.tool_base_url)
    with ctx.db.session_scope() as session:
        key, _ = ensure_key(session, ctx.config.secret_key)
        jwk = dict(key.public_jwk)
    lines = [
        ("Dynamic Registration URL (Moodle: Tool URL → Add LTI Advantage)", urls.register),
        ("Tool URL / target link URI", urls.launch),
        ("Initiate login URL", urls.login),
        ("Redirection URI(s)", urls.launch),
        ("Public keyset URL (JWKS)", urls.jwks),
        ("Deep linking URL (content selection)", urls.launch),
        ("Domain", urls.domain),
    ]
    for label, value in lines:
        click.echo(f"{label}:\n    {value}")
    click.echo("Public key (JWK):")
    click.echo("    " + json.dumps(jwk))


# --- content --------------------------------------------------------------------------------


@main.group()
def content() -> None:
    """The curriculum content (content/)."""


@content.command("check")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The content folder (default: CONTENT_DIR or ./content).",
)
@click.option("--lint-details", is_flag=True, help="List every lint finding.")
def content_check(root: Path | None, lint_details: bool) -> None:
    """Validate every content file; print each problem as FILE:LINE: MESSAGE, then the lint."""
    from lti_tool.catalog.lint import lint
    from lti_tool.catalog.loader import ContentInvalid, load_catalog
    from lti_tool.config import content_dir

    folder = root or content_dir()
    try:
        catalog = load_catalog(folder)
    except ContentInvalid as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{len(exc.problems)} problems in {folder}") from None
    units = sum(len(m.units) for m in catalog.modules)
    click.echo(
        f"content ok: {len(catalog.modules)} modules, {units} units, "
        f"{len(catalog.questions)} test questions, {len(catalog.scenarios)} scenarios, "
        f"{len(catalog.sources)} sources, {len(catalog.glossary)} glossary terms"
    )
    report = lint(catalog)
    click.echo(report.summary())
    if lint_details:
        for finding in report.findings:
            click.echo(f"  {finding.kind}: {finding.where}: {finding.detail}")


@content.command("stats")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The content folder (default: CONTENT_DIR or ./content).",
)
def content_stats(root: Path | None) -> None:
    """Units per area, characters per language, questions per area and type, scenarios."""
    from collections import Counter

    from lti_tool.catalog.loader import ContentInvalid, load_catalog
    from lti_tool.catalog.ruby import strip_ruby
    from lti_tool.config import content_dir

    try:
        catalog = load_catalog(root or content_dir())
    except ContentInvalid as exc:
        raise click.ClickException(
            f"{len(exc.problems)} problems: run `lti-tool content check`"
        ) from None
    for module in catalog.modules:
        chars: Counter[str] = Counter()
        for unit in module.units:
            for language, text in unit.sources_text.items():
                chars[language] += len("".join(strip_ruby(text).split()))
        click.echo(
            f"area {module.id}: {len(module.units)} units; body characters "
            + ", ".join(f"{lang} {chars[lang]}" for lang in ("ja", "ja-easy", "en"))
            + f"; {sum(1 for u in module.units if u.has_easy)} with easy Japanese"
        )
    by_area = Counter(q.area for q in catalog.questions.values())
    by_type = Counter(q.type for q in catalog.questions.values())
    click.echo(
        f"questions: {len(catalog.questions)}; by area "
        + ", ".join(f"{a} {by_area[a]}" for a in sorted(by_area))
        + "; by type "
        + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))
    )
    click.echo(f"scenarios: {len(catalog.scenarios)}; glossary terms: {len(catalog.glossary)}")


@content.command("furigana")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--write", is_flag=True, help="Rewrite FILE in place (else print to stdout).")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The content folder holding glossary.yaml (default: CONTENT_DIR or ./content).",
)
def content_furigana(file: Path, write: bool, root: Path | None) -> None:
    """Propose ruby for kanji without it in a unit FILE, for the author to review."""
    from lti_tool.catalog.furigana import propose, sudachi_reader
    from lti_tool.catalog.loader import ContentInvalid, load_glossary
    from lti_tool.config import content_dir

    try:
        glossary = load_glossary(root or content_dir())
    except ContentInvalid as exc:
        raise click.ClickException(f"glossary.yaml has problems:\n{exc}") from None
    reader = sudachi_reader()
    if reader is None:
        click.echo(
            "SudachiPy is not installed (pip install -e '.[authoring]'): "
            "only glossary readings are proposed.",
            err=True,
        )
    try:
        source = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text") from None
    proposal = propose(source, glossary, reader)
    if write:
        file.write_text(proposal.text, encoding="utf-8")
        click.echo(
            f"{file}: ruby proposed on {proposal.changed_lines} lines; review them", err=True
        )
    else:
        click.echo(proposal.text, nl=False)


# --- grades and roster ------------------------------------------------------------------------


@main.group()
def grades() -> None:
    """The grade outbox."""


@grades.command("deliver")
@click.option("--loop", is_flag=True, help="Keep delivering (a worker) until stopped.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Seconds to wait when nothing is due (with --loop).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10000),
    default=200,
    show_default=True,
    help="Scores claimed per pass.",
)
@pass_ctx
def grades_deliver(ctx: CliContext, loop: bool, interval: float, limit: int) -> None:
    """Send due scores to the LMS (one pass, or --loop). Safe to run many at once."""
    import signal
    import time

    from lti_tool.grading.delivery import deliver

    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    def _pause(seconds: float) -> None:
        # In short naps: SIGTERM ends the worker within a moment, not after the interval.
        deadline = time.monotonic() + seconds
        while not stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))

    previous = signal.signal(signal.SIGTERM, _stop) if loop else None
    total: dict[str, int] = {}
    try:
        while True:
            outcomes = deliver(ctx.db, ctx.config, limit=limit)
            for key, count in outcomes.items():
                total[key] = total.get(key, 0) + count
            if not loop or stopping:
                break
            if sum(outcomes.values()) < limit:
                _pause(interval)
            if stopping:
                break
    finally:
        if loop and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "nothing due"
    click.echo(f"grades: {summary}")


@main.group()
def roster() -> None:
    """Course rosters from the platform (NRPS)."""


@roster.command("sync")
@click.option("--course", "course_ids", type=int, multiple=True, help="A course id (repeatable).")
@click.option("--force", is_flag=True, help="Even if refreshed recently.")
@pass_ctx
def roster_sync(ctx: CliContext, course_ids: tuple[int, ...], force: bool) -> None:
    """Fetch the member lists of courses (default: every course with a memberships URL)."""
    from lti_tool.identity.models import Course
    from lti_tool.identity.roster import sync_course

    if not course_ids:
        with ctx.db.session_scope() as session:
            course_ids = tuple(
                session.scalars(
                    select(Course.id).where(Course.memberships_url.is_not(None)).order_by(Course.id)
                )
            )
    failed = 0
    for course_id in course_ids:
        result = sync_course(ctx.db, ctx.config, course_id, force=force)
        if result.error:
            failed += 1
            click.echo(f"course {course_id}: failed: {result.error}", err=True)
        elif result.synced:
            click.echo(
                f"course {course_id}: {result.members} members, {result.added} new, "
                f"{result.deactivated} no longer listed"
            )
        else:
            click.echo(f"course {course_id}: recently synced (use --force)")
    if failed:
        raise SystemExit(1)


# --- serve ------------------------------------------------------------------------------------


@main.command("serve")
@click.option(
    "--workers",
    type=int,
    default=lambda: int(os.environ.get("WEB_CONCURRENCY", "2")),
    show_default="WEB_CONCURRENCY or 2",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Threads per worker.",
)
@click.option("--dev", is_flag=True, help="Werkzeug's reloading development server.")
@pass_ctx
def serve(ctx: CliContext, workers: int, threads: int, dev: bool) -> None:
    """Migrate, make sure a signing key exists, and serve the tool."""
    from lti_tool.lti.keys import ensure_key
    from lti_tool.lti.registration import ToolUrls

    cfg = ctx.config
    problems = cfg.production_problems()
    if problems:
        raise click.ClickException("refusing to start: " + "; ".join(problems))
    upgrade_database(cfg.database_url)
    with ctx.db.session_scope() as session:
        ensure_key(session, cfg.secret_key)
        if cfg.demo:
            from lti_tool.demo.platform import DemoPlatform

            DemoPlatform(cfg).ensure_registered(session)
    urls = ToolUrls(cfg.tool_base_url)
    click.echo(f"Tsunagu is serving on http://{cfg.host}:{cfg.port}")
    click.echo(f"Dynamic Registration URL (paste into Moodle): {urls.register}")
    if cfg.demo:
        click.echo(f"Demo LMS: http://localhost:{cfg.port}/demo")
    sys.stdout.flush()
    if dev:
        from lti_tool.app import create_app

        create_app(cfg).run(host=cfg.host, port=cfg.port, debug=False)
        return
    # Threads, not sync workers: a worker busy after a response (a roster sync calling the
    # LMS, whose token endpoint calls back for our JWKS) must not leave the tool unable to
    # answer, nor may an idle browser connection hold a whole worker.
    os.execvp(  # noqa: S606 - replaces this process with gunicorn, arguments fixed here
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--bind",
            f"{cfg.host}:{cfg.port}",
            *gunicorn_tmp_dir_args(),
            "lti_tool.wsgi:app",
        ],
    )


def gunicorn_tmp_dir_args() -> list[str]:
    """Workers tell the arbiter they are alive by touching a file, between requests: in memory
    (/dev/shm, as gunicorn advises for containers) that is cheaper than on a disk, and never
    blocks on one."""
    shm = "/dev/shm"  # noqa: S108 - gunicorn makes its files there with mkstemp and unlinks them
    return ["--worker-tmp-dir", shm] if os.path.isdir(shm) else []
