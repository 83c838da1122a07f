"""``tutor`` commands that run or administer the service: serve, db, tenant, content, model,
rebuild-state (mounted by :mod:`tutor.cli`). They read the same ``TUTOR_*`` settings as the
server (``--database-url`` overrides ``TUTOR_DATABASE_URL``)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

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

AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
TenantName = Annotated[str, typer.Option(help="Tenant name.")]

db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
key_app = typer.Typer(
    help="A tenant's API keys. A tenant may hold several at once: to rotate without downtime, "
         "`tutor key create`, move the apps to the new key, then `tutor key revoke` the old "
         "one. Servers stop accepting a revoked key within TUTOR_KEY_CACHE_SECONDS.",
    no_args_is_help=True)
content_app = typer.Typer(help="Content packs.", no_args_is_help=True)
model_app = typer.Typer(help="Fitted models serving a tenant instead of its content's tracer.",
                        no_args_is_help=True)


class _AsJson(Protocol):
    def to_json(self) -> dict[str, Any]: ...


_Listed = TypeVar("_Listed", bound=_AsJson)


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value) + "\n")


def _print_listing(found: Sequence[_Listed], as_json: bool, key: str, head: dict[str, str],
                   empty: str, line: Callable[[_Listed], str]) -> None:
    """What a list command found: ``{**head, key: [...]}`` as JSON, else a line each (or
    ``empty``)."""
    if as_json:
        _print_json({**head, key: [x.to_json() for x in found]})
        return
    if not found:
        print(empty)
    for x in found:
        print(line(x))


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


@db_app.command("purge-erased")
def db_purge_erased(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """Remove erased learners' data from the database files for good.

    PostgreSQL: a DELETE (learner erasure) leaves the rows' bytes in the table and index
    files until they are rewritten; a plain VACUUM only marks the space reusable. This runs
    VACUUM FULL on the learner tables (events, learners, experiment_assignments, placements)
    and the planner's statistics: they are written anew, compactly, and the old files deleted. The
    trade-off: each table is locked while it is rewritten, so answers and reads wait (about
    seconds per GB), and it needs free disk space for a copy of the tables. Run it at a quiet
    hour after erasures (daily, say). WAL segments and backups keep old data until they are
    recycled or expire.

    SQLite: erasures are already clean (secure_delete, and the write-ahead log is emptied
    after each); this runs VACUUM, which also cleans up after erasures made by older versions.
    """
    from api.admin import purge_erased

    settings = _settings(database_url)
    engine = _ready_engine(settings)
    started = time.perf_counter()
    tables = purge_erased(engine)
    seconds = round(time.perf_counter() - started, 3)
    if as_json:
        _print_json({"database": engine.dialect.name, "rewritten": tables, "seconds": seconds})
    else:
        print(f"purged erased data ({engine.dialect.name}): rewrote {', '.join(tables)} in "
              f"{seconds} s")


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


@tenant_app.command("list")
def tenant_list(as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """List the tenants: keys, content packs, learners, content version, the default policy
    and tracer each set (`default`: the engine's; `tutor tenant defaults NAME` shows which)."""
    from api.admin import list_tenants

    _print_listing(
        list_tenants(_ready_engine(_settings(database_url))), as_json, "tenants", {},
        "no tenants (create one with `tutor tenant create NAME`)",
        lambda t: f"{t.name}  keys: {t.keys}  learners: {t.learners}  content version: "
                  f"{t.content_version}  target success: {t.target_success}  policy: "
                  f"{t.policy or 'default'}  tracer: {t.tracer or 'default'}  packs: "
                  f"{', '.join(t.packs) or '-'}")


@tenant_app.command("defaults")
def tenant_defaults(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    policy: Annotated[str | None, typer.Option(
        help="The default policy, with its options: NAME or NAME:option=value,... (e.g. "
             "target-success:target_success=0.7); left out: the engine's default.")] = None,
    tracer: Annotated[str | None, typer.Option(
        help="The tracer built from the content's parameters (no fit needed): bkt-memory, "
             "bkt, bkt-forgets; left out: the policy's own.")] = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Go back to the engine's defaults (policy and tracer).")] = False,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Show a tenant's default policy and tracer, or set both at once (--policy, --tracer:
    what is left out goes back to the engine's default, as with PUT /v1/tenant/defaults). A
    policy that needs a tracer with memory is refused on a tracer without it; a new tracer
    rebuilds each learner's state from the answer log once; learners in a running experiment
    keep their arm's policy."""
    from api.defaults_cli import line, show_or_set

    engine, target = _tenant(database_url, name)
    try:
        found = show_or_set(engine, target.id, policy, tracer, reset)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        _print_json({"tenant": name, **found})
    else:
        print(f"{name}: {line(found)}")


@key_app.command("create")
def key_create(tenant: TenantName, as_json: AsJson = False,
               database_url: DbUrl = None) -> None:
    """Create another API key for a tenant (its other keys stay valid); the key is shown
    only this once."""
    from api.admin import create_key

    engine, target = _tenant(database_url, tenant)
    info, key = create_key(engine, target.id)
    if as_json:
        _print_json({"tenant": tenant, **info.to_json(), "api_key": key})
    else:
        print(f"key {info.id} ({info.prefix}...) created for {tenant!r}; store it now, it is "
              f"not kept:\n{key}")


@key_app.command("list")
def key_list(tenant: TenantName, as_json: AsJson = False, database_url: DbUrl = None) -> None:
    """List a tenant's API keys: id, first characters, creation time (never the keys)."""
    from api.admin import list_keys

    engine, target = _tenant(database_url, tenant)
    _print_listing(list_keys(engine, target.id), as_json, "keys", {"tenant": tenant},
                   f"tenant {tenant!r} has no keys (`tutor key create --tenant {tenant}`)",
                   lambda k: f"{k.id}  {k.prefix}...  created {k.to_json()['created_at']}")


KeyName = Annotated[str, typer.Argument(
    help="The key: its id or prefix as `tutor key list` shows them, or the key itself.")]


@key_app.command("revoke")
def key_revoke(key: KeyName, tenant: TenantName, as_json: AsJson = False,
               database_url: DbUrl = None) -> None:
    """Revoke (delete) one of a tenant's API keys. Servers stop accepting it within
    TUTOR_KEY_CACHE_SECONDS."""
    from api.admin import revoke_key

    engine, target = _tenant(database_url, tenant)
    try:
        info = revoke_key(engine, target.id, key)
    except LookupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _print_json({"tenant": tenant, "revoked": info.to_json()})
    else:
        print(f"key {info.id} ({info.prefix}...) of {tenant!r} revoked")


@key_app.command("rotate")
def key_rotate(
    tenant: TenantName,
    key: Annotated[str | None, typer.Argument(
        help="The key to replace: its id or prefix as `tutor key list` shows them, or the key "
             "itself (default: the tenant's only key).")] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Replace a key at once: create a new one and revoke the old (for a key that leaked;
    apps still using the old key fail once servers stop accepting it, within
    TUTOR_KEY_CACHE_SECONDS). Without downtime instead: `key create`, then `key revoke`."""
    from api.admin import rotate_key

    engine, target = _tenant(database_url, tenant)
    try:
        new, secret, old = rotate_key(engine, target.id, key)
    except LookupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _print_json({"tenant": tenant, **new.to_json(), "api_key": secret,
                     "revoked": old.to_json()})
    else:
        print(f"key {old.id} ({old.prefix}...) of {tenant!r} revoked; new key {new.id} (store "
              f"it now, it is not kept):\n{secret}")


@content_app.command("list")
def content_list(tenant: TenantName, as_json: AsJson = False,
                 database_url: DbUrl = None) -> None:
    """List a tenant's content packs."""
    from api.admin import list_packs

    engine, target = _tenant(database_url, tenant)
    _print_listing(list_packs(engine, target.id), as_json, "packs", {"tenant": tenant},
                   f"tenant {tenant!r} has no content packs (`tutor content import`)",
                   lambda p: f"{p.name}  ({p.title}): {p.skills} skills, {p.items} items, "
                             f"{p.courses} courses; imported {p.to_json()['imported_at']}")


@content_app.command("remove")
def content_remove(
    pack: Annotated[str, typer.Argument(help="The pack's name (`tutor content list`).")],
    tenant: TenantName,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Remove a content pack from a tenant (refused while another pack depends on it).
    Learners keep their answers to its items; the model no longer counts them."""
    from api.admin import remove_pack

    engine, target = _tenant(database_url, tenant)
    try:
        removed = remove_pack(engine, target.id, pack)
    except (LookupError, ContentError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        _print_json({"tenant": tenant, "removed": removed.name})
    else:
        print(f"removed pack {removed.name!r} from {tenant!r}")


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
    settings = _settings(database_url)
    engine = _ready_engine(settings)
    try:
        target = tenant_by_name(engine, tenant)
        loaded = import_pack(engine, target.id, json.loads(path.read_text()), str(path),
                             max_items=settings.max_content_items)
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
    """Serve a tenant with its content's tracer again (the one `tutor tenant defaults`
    shows)."""
    from api.models import unregister_model

    engine, target = _tenant(database_url, tenant)
    try:
        tracer = unregister_model(engine, target.id)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if tracer is None:
        raise fail(f"tenant {tenant!r} has no registered model: it is served by its "
                   "content's tracer already")
    print(f"tenant {tenant!r} is served by its content's {tracer} again")


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
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Recompute every learner's state from the answer log and write it over any cached entry
    that is not exactly it (e.g. after a Redis loss, a database restore, damaged entries);
    reports what the entries were: current, missing, stale, wrong, damaged (by kind)."""
    from api.service import TutorService
    from api.store import make_store
    from api.tenants import tenant_by_name

    settings = _settings(database_url)
    engine = _ready_engine(settings)
    store = make_store(settings, engine)
    if not settings.redis_url:
        err.print("no TUTOR_REDIS_URL: each server process caches states itself (and rebuilds "
                  "them from the log as needed); checking the log only")
    try:
        store.ping()
    except Exception as exc:  # an unreachable Redis: nothing could be repaired
        raise fail(f"the state store cannot be reached ({type(exc).__name__}): nothing was "
                   "rebuilt") from None
    service = TutorService(engine, store)
    with engine.connect() as conn:
        names = [tenant] if tenant else list(conn.execute(select(tenants.c.name)).scalars())
    reports = []
    for name in names:
        try:
            found = service.rebuild_all(tenant_by_name(engine, name))
        except LookupError as exc:
            raise fail(str(exc)) from None
        learners = sum(found.values())
        rebuilt = learners - found["current"]
        reports.append({"tenant": name, "learners": learners, "rebuilt": rebuilt,
                        "found": dict(sorted(found.items()))})
        if not as_json:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items())
                              if kind != "current")
            print(f"{name}: {learners} learner states checked, {found['current']} current; "
                  f"rebuilt {rebuilt} learner states{f' ({kinds})' if kinds else ''}")
    if as_json:
        _print_json({"tenants": reports})


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
    # --http: uvicorn's protocol with header and body read timeouts (api.http_limits)
    os.execv(sys.executable, [
        sys.executable, "-m", "uvicorn", "api.app:app_from_env", "--factory", "--host", host,
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        "--no-access-log", "--http", "api.http_limits:TimedHttpProtocol"])


def experiment_report(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    tenant: TenantName,
    alpha: Annotated[float, typer.Option(
        help="Error rate of the intervals (1 - confidence), between 0 and 1.")] = 0.05,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """A tenant's experiment results, replayed from the answer log: per arm, learners,
    answers, accuracy, exercises to skill mastery and the share who return after a day, with
    intervals valid however often they are looked at, each arm against the control, and the
    sample-ratio-mismatch check (also GET /v1/experiments/{name}/results)."""
    from api.experiment_results import experiment_results
    from api.service import NotFound, TutorService
    from api.store import make_store

    settings = _settings(database_url)
    engine, target = _tenant(database_url, tenant)
    try:
        report = experiment_results(TutorService(engine, make_store(settings, engine)), target,
                                    name, alpha)
    except NotFound as exc:
        raise fail(f"{exc} (tenant {tenant!r}; GET /v1/experiments lists them)") from None
    except ValueError as exc:  # alpha
        raise fail(str(exc)) from None
    if as_json:
        _print_json(json.loads(json.dumps(report, default=str)))
        return
    print(f"experiment {report['experiment']!r} ({report['status']}), control "
          f"{report['control']!r}, intervals valid at every look (alpha {alpha})")
    for arm in report["arms"]:
        print(f"  {arm['arm']} ({arm['policy']}, weight {arm['weight']:g}): {arm['learners']} "
              f"learners, {arm['active']} active, {arm['answers']} answers")
        for metric, e in arm["metrics"].items():
            print(f"    {metric:<22} {_shown(e['mean'])} [{_shown(e['ci'][0])}, "
                  f"{_shown(e['ci'][1])}] over {e['n']} learners")
    for arm_name, per_metric in report["differences"].items():
        print(f"  {arm_name} - {report['control']}:")
        for metric, d in per_metric.items():
            mark = "  significant" if d["significant"] else ""
            print(f"    {metric:<22} {_shown(d['estimate'])} [{_shown(d['ci'][0])}, "
                  f"{_shown(d['ci'][1])}] p={d['p_value']:.4g}{mark}")
    srm = report["srm"]
    alarm = "  MISMATCH: do not trust the comparison" if srm["mismatch"] else ""
    print(f"  sample ratio: {srm['counts']} learners for expected "
          f"{[round(e, 1) for e in srm['expected']]}: chi2 {srm['chi2']:.3f}, p "
          f"{srm['p_value']:.4g}{alarm}")


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def register_experiment(experiment_app: typer.Typer) -> None:
    """Add the service commands to the ``tutor experiment`` group (made by :mod:`tutor.cli`)."""
    experiment_app.command("report")(experiment_report)


def register(app: typer.Typer) -> None:
    """Add the service commands to the ``tutor`` command line."""
    app.command()(serve)
    app.command("rebuild-state")(rebuild_state)
    app.add_typer(db_app, name="db")
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(key_app, name="key")
    app.add_typer(content_app, name="content")
    app.add_typer(model_app, name="model")
