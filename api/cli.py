"""``tutor`` commands that run or administer the service: serve, db, tenant, content, model,
rebuild-state (mounted by :mod:`tutor.cli`). They read the same ``TUTOR_*`` settings as the
server (``--database-url`` overrides ``TUTOR_DATABASE_URL``)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Engine, func, select

from api.db import is_current, make_engine, tenants, upgrade
from api.settings import Settings
from content.packs import bundled_packs
from engine.catalog import ContentError
from tutor.console import err, fail

if TYPE_CHECKING:
    from api.tenants import Tenant
    from engine.events import AnswerLog

DbUrl = Annotated[str | None, typer.Option(
    "--database-url", help="SQLAlchemy URL (default: $TUTOR_DATABASE_URL or sqlite:///./tutor.db)")]

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants and API keys.", no_args_is_help=True)
content_app = typer.Typer(help="Content packs.", no_args_is_help=True)
model_app = typer.Typer(help="Fitted models serving a tenant instead of its content's BKT.",
                        no_args_is_help=True)


def _settings(database_url: str | None) -> Settings:
    if database_url:
        os.environ["TUTOR_DATABASE_URL"] = database_url  # also for server workers
    return Settings.from_env()


def _ready_engine(settings: Settings) -> Engine:
    """An engine on a database migrated to the newest schema (an empty one gets created)."""
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True,
                                                                            exist_ok=True)
    engine = make_engine(settings.database_url)
    if not is_current(engine):
        upgrade(settings.database_url)
    return engine


def _tenant(database_url: str | None, name: str) -> tuple[Engine, Tenant]:
    """The ready database and the tenant called ``name`` (exit status 2 if there is none)."""
    from api.tenants import tenant_by_name

    engine = _ready_engine(_settings(database_url))
    try:
        return engine, tenant_by_name(engine, name)
    except LookupError as exc:
        raise fail(str(exc)) from None


@db_app.command("upgrade")
def db_upgrade(database_url: DbUrl = None) -> None:
    """Apply pending migrations."""
    settings = _settings(database_url)
    upgrade(settings.database_url)
    err.print(f"database at the newest schema: {settings.database_url}")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="Tenant name (unique).")],
    target_success: Annotated[float, typer.Option(
        help="Success rate the next exercise aims at.")] = 0.75,
    as_json: Annotated[bool, typer.Option("--json", help="Print {tenant, api_key} as JSON.")]
    = False,
    database_url: DbUrl = None,
) -> None:
    """Create a tenant and print its API key (shown only this once)."""
    from api.tenants import create_tenant

    engine = _ready_engine(_settings(database_url))
    try:
        tenant, key = create_tenant(engine, name, target_success)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps({"tenant": tenant.name, "api_key": key}) + "\n")
    else:
        print(f"tenant {tenant.name!r} created; API key (store it now, it is not kept):\n{key}")


@content_app.command("import")
def content_import(
    pack: Annotated[str, typer.Argument(
        help="A pack file, or a bundled pack by name or short name (math, vocab).")],
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    database_url: DbUrl = None,
) -> None:
    """Import (or replace) a content pack for a tenant."""
    from api.tenants import import_pack, tenant_by_name

    bundled = bundled_packs()
    by_short_name = {path.stem: path for path in bundled.values()}
    path = bundled.get(pack) or by_short_name.get(pack) or Path(pack)
    if not path.is_file():
        raise fail(f"no pack file {pack!r} (bundled packs: "
                    f"{', '.join(f'{p.stem} ({name})' for name, p in bundled.items())})")
    engine = _ready_engine(_settings(database_url))
    try:
        target = tenant_by_name(engine, tenant)
        loaded = import_pack(engine, target.id, json.loads(path.read_text()), str(path))
    except (LookupError, ContentError, json.JSONDecodeError) as exc:
        raise fail(str(exc)) from None
    print(f"imported {loaded.name!r} for {tenant!r}: {len(loaded.skills)} skills, "
          f"{len(loaded.items)} items, {len(loaded.courses)} courses")


@model_app.command("register")
def model_register(
    model: Annotated[Path, typer.Argument(
        help="A saved model: what `tutor fit` wrote (a BKT parameter file, a DKT checkpoint "
             "directory), or pyBKT's coef_ as JSON.")],
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    database_url: DbUrl = None,
) -> None:
    """Serve a tenant with a fitted model; its learners' states are rebuilt with it."""
    from api.models import register_model
    from api.tenants import load_catalog

    engine, target = _tenant(database_url, tenant)
    try:
        summary = register_model(engine, target.id, model, load_catalog(engine, target.id))
    except (FileNotFoundError, ValueError, ContentError) as exc:
        raise fail(str(exc)) from None
    print(f"tenant {tenant!r} is now served by {summary['kind']} ({summary['skills']} skills) "
          f"from {model}")


@model_app.command("unregister")
def model_unregister(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    database_url: DbUrl = None,
) -> None:
    """Serve a tenant with its content's BKT again."""
    from api.models import unregister_model

    engine, target = _tenant(database_url, tenant)
    if not unregister_model(engine, target.id):
        raise fail(f"tenant {tenant!r} has no registered model: it is served by BKT already")
    print(f"tenant {tenant!r} is served by BKT again")


def tenant_log(tenant: str, database_url: str | None) -> AnswerLog:
    """A tenant's answer log (learners in id order, each in answer order)."""
    from api.db import events
    from engine.events import AnswerEvent, AnswerLog

    engine, target = _tenant(database_url, tenant)
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.learner_id, events.c.item_id, events.c.skills, events.c.correct,
                   events.c.answered_at, events.c.response_ms, events.c.event_id)
            .where(events.c.tenant_id == target.id)
            .order_by(events.c.learner_id, events.c.seq))
        return AnswerLog.from_events(
            AnswerEvent(r.learner_id, r.item_id, tuple(r.skills), r.correct,
                        timestamp=r.answered_at, response_ms=r.response_ms,
                        event_id=r.event_id) for r in rows)


def rebuild_state(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all).")]
    = None,
    database_url: DbUrl = None,
) -> None:
    """Recompute cached learner states from the answer log (e.g. after a Redis loss)."""
    from api.service import TutorService
    from api.store import make_store
    from api.tenants import tenant_by_name

    settings = _settings(database_url)
    engine = _ready_engine(settings)
    service = TutorService(engine, make_store(settings))
    with engine.connect() as conn:
        names = [tenant] if tenant else list(conn.execute(select(tenants.c.name)).scalars())
    for name in names:
        try:
            count = service.rebuild_all(tenant_by_name(engine, name))
        except LookupError as exc:
            raise fail(str(exc)) from None
        print(f"{name}: rebuilt {count} learner states")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(
        help="On an empty database, create tenant 'demo' with the bundled packs and print "
             "its API key.")] = False,
    database_url: DbUrl = None,
) -> None:
    """Run the HTTP API (migrating an empty database first)."""
    from api.tenants import create_tenant, import_pack

    settings = _settings(database_url)
    engine = _ready_engine(settings)
    with engine.connect() as conn:
        n_tenants = conn.execute(select(func.count()).select_from(tenants)).scalar_one()
    base = f"http://{host}:{port}"
    if n_tenants == 0 and demo:
        tenant, key = create_tenant(engine, "demo")
        for path in bundled_packs().values():
            import_pack(engine, tenant.id, json.loads(path.read_text()), str(path))
        err.print(f"Created tenant 'demo' with the packs {', '.join(bundled_packs())}. "
                  f"API key (shown once):\n  {key}\nTry:\n  curl -H 'Authorization: Bearer "
                  f"{key}' {base}/v1/learners/ada/next")
    elif n_tenants == 0:
        err.print("No tenant yet. In another shell:\n"
                  "  tutor tenant create demo            # prints an API key\n"
                  "  tutor content import math --tenant demo\n"
                  f"then: curl -H 'Authorization: Bearer <key>' {base}/v1/learners/ada/next")
    engine.dispose()
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tutor-metrics-")
    store = settings.redis_url or "in-process"
    err.print(f"serving on http://{host}:{port} ({workers} worker(s); database "
              f"{settings.database_url}; learner states {store}); docs at /docs")
    # exec uvicorn itself: its worker processes then import only the app, not this command line
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [
        sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--host", host,
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        "--no-access-log"])


def register(app: typer.Typer) -> None:
    """Add the service commands to the ``tutor`` command line."""
    app.command()(serve)
    app.command("rebuild-state")(rebuild_state)
    app.add_typer(db_app, name="db")
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(content_app, name="content")
    app.add_typer(model_app, name="model")
