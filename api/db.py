"""The database: tables (SQLAlchemy Core), engine set-up, and migrations (Alembic).

The answer log (``events``) is the source of truth; everything else about a learner can be
rebuilt from it. Every row carries its ``tenant_id``, and every query filters on it.
SQLite is the zero-install default (WAL, full fsync: an acknowledged answer survives a crash);
PostgreSQL is selected by URL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError

from engine.ids import MAX_ID_LENGTH

_P = ParamSpec("_P")
_R = TypeVar("_R")
MIGRATIONS = Path(__file__).with_name("migrations")
ID = MAX_ID_LENGTH  # longest learner/item/skill/pack id, in characters

metadata = MetaData()

tenants = Table(
    "tenants", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(ID), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("target_success", Float, nullable=False, server_default="0.75"),
    Column("content_version", Integer, nullable=False, server_default="0"),
    # the tenant's default policy, its options and its tracer (migration 0010;
    # api.tenant_defaults): NULL, not configured: the engine's default policy, and its tracer
    Column("policy", String(64)),
    Column("policy_options", JSON),
    Column("tracer", String(32)),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 hex; keys never stored
    Column("prefix", String(16), nullable=False),  # first characters, to tell keys apart
    Column("created_at", DateTime(timezone=True), nullable=False),
)

content_packs = Table(
    "content_packs", metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(ID), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

#: a trained model that serves a tenant instead of BKT from its content (one per tenant)
tracer_models = Table(
    "tracer_models", metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(32), nullable=False),  # "dkt"
    Column("document", JSON, nullable=False),  # the checkpoint's model.json
    Column("weights", LargeBinary, nullable=False),  # the checkpoint's weights.pt
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

learners = Table(
    "learners", metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("learner_id", String(ID), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("last_seq", Integer, nullable=False, server_default="0"),  # seq of the newest answer
    # the identity of the answers logged (api.store.chain of a random link per answer): a
    # cached state is used only at the digest it was computed at (migration 0005)
    Column("log_digest", BigInteger, nullable=False, server_default="0"),
    # the learner's current course (the last one given by an answer or GET /next); NULL: none
    Column("course", String(ID)),
    # consent (migration 0006): personalization false = opted out (served the fixed
    # curriculum, never enrolled in an experiment); experiment_consent NULL = not asked
    Column("personalization", Boolean, nullable=False, server_default=true()),
    Column("experiment_consent", Boolean),
    Column("consent_updated_at", DateTime(timezone=True)),
    # a placement test is running (migration 0007; api.placement): its answers take the
    # locked path, which gives the test's next item
    Column("in_placement", Boolean, nullable=False, server_default=false()),
)

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("learner_id", String(ID), nullable=False),
    Column("seq", Integer, nullable=False),  # 1, 2, ... per learner: the order of application
    Column("event_id", String(64), nullable=False),  # the client's idempotency key
    Column("item_id", String(ID), nullable=False),
    Column("skills", JSON, nullable=False),
    Column("correct", Boolean, nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("response_ms", Float),
    Column("response", Text, nullable=False),  # the JSON answered, replayed for a retry
    # what chose the response's `next` (migration 0006): the policy's name, and the experiment
    # and arm the learner was served by (NULL: none), so that analyses replay from the log
    Column("policy", String(64)),
    Column("experiment_id", Integer),
    Column("arm", String(ID)),
    UniqueConstraint("tenant_id", "event_id", name="uq_events_event_id"),
    # also the index for reading one learner's answers in order
    UniqueConstraint("tenant_id", "learner_id", "seq", name="uq_events_seq"),
)

#: a tenant's experiments (api.experiments): arms are policy configurations with weights
experiments = Table(
    "experiments", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(ID), nullable=False),
    Column("arms", JSON, nullable=False),  # [{"name", "weight", "policy", "options"}, ...]
    Column("require_consent", Boolean, nullable=False, server_default=false()),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("stops_at", DateTime(timezone=True)),  # NULL: until stopped
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_experiments_name"),
)

#: each learner's arm, from its first served exercise while the experiment ran; erased with
#: the learner (the foreign key cascades)
experiment_assignments = Table(
    "experiment_assignments", metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"),
           primary_key=True),
    Column("tenant_id", Integer, nullable=False),
    Column("learner_id", String(ID), primary_key=True),
    Column("arm", String(ID), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["tenant_id", "learner_id"],
                         ["learners.tenant_id", "learners.learner_id"], ondelete="CASCADE",
                         name="fk_assignments_learner"),
    Index("ix_assignments_learner", "tenant_id", "learner_id"),
)

#: each learner's placement test (api.placement): its configuration and seed while it runs
#: (its answers are the learner's first ``answers`` events), its result once it has ended;
#: erased with the learner (the foreign key cascades)
placements = Table(
    "placements", metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("learner_id", String(ID), primary_key=True),
    Column("course", String(ID)),  # NULL: the whole content
    Column("seed", BigInteger, nullable=False),
    Column("max_length", Integer, nullable=False),
    Column("se_target", Float),  # NULL: no standard-error stop
    Column("status", String(16), nullable=False),  # running, finished, stopped, abandoned
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    # items used, the estimate and the item ids in order: so far while running, then the result
    Column("answers", Integer, nullable=False, server_default="0"),
    Column("theta", Float),
    Column("se", Float),
    Column("mastery", JSON),  # starting P(mastered) per skill, once ended
    Column("items", JSON),
    Column("next_item", String(ID)),  # while running: the item given now (NULL: replayed)
    Column("reason", String(512)),  # why it was abandoned
    # migration 0011: skills (per-skill test) or theta; the classification stop; each skill's
    # estimate (so far while running, then the result; NULL for a θ test)
    Column("method", String(16), nullable=False, server_default="theta"),
    Column("confidence", Float),
    Column("skills", JSON),
    ForeignKeyConstraint(["tenant_id", "learner_id"],
                         ["learners.tenant_id", "learners.learner_id"], ondelete="CASCADE",
                         name="fk_placements_learner"),
)


#: secrets every worker and node must share (migration 0009 draws them): ``state_cache_key``
#: signs the learner-state entries in Redis (:func:`state_cache_key`)
service_secrets = Table(
    "service_secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),  # hex: readable as text, like every column
)


@functools.lru_cache(maxsize=8)
def _secret(engine: Engine, name: str) -> bytes:
    with engine.connect() as conn:
        value = conn.execute(select(service_secrets.c.value).where(
            service_secrets.c.name == name)).scalar()
    if value is None:
        raise RuntimeError(f"the database has no secret {name!r}: run `tutor db upgrade`")
    return bytes.fromhex(value)


def state_cache_key(engine: Engine) -> bytes:
    """The key of the MAC over each cached learner state (:class:`api.store.RedisStore`),
    read once per process (a read that meets a closed connection runs again)."""
    return retry_if_disconnected(_secret)(engine, "state_cache_key")


def bump_content_version(conn: Connection, tenant_id: int) -> None:
    """Start a new version of the tenant's content (its packs or its model changed): every
    worker's catalog, tracer and cached learner states of the old version stop matching."""
    conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                 .values(content_version=tenants.c.content_version + 1))


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full fsync, a busy timeout, foreign keys,
    secure deletion and transactions that really begin (SQLAlchemy's documented pysqlite
    recipe)."""
    if url.startswith("sqlite"):
        # hide_parameters: an error's message then holds the statement, never the values (an
        # API key's hash, a learner's answers), wherever it is logged
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # type: ignore[no-untyped-def]
            conn.isolation_level = None  # let SQLAlchemy, not the driver, issue BEGIN
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            # deleted rows are overwritten with zeros, not left in free space: an erased
            # learner leaves no trace in the file (some builds default to it; the app does
            # not rely on that). Only deletes pay for it, not answers
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            # a real BEGIN also for reads (the driver would skip it); write transactions here
            # start with a write, so they take the write lock at once, never by upgrading
            conn.exec_driver_sql("BEGIN")

        return engine
    # no pool_pre_ping: it cost a round trip per transaction (a fifth of an answer's). A
    # connection the server closed (restart, failover) fails its first statement instead; the
    # pool then drops it with every connection as old, and the request runs again on a fresh
    # one (retry_if_disconnected)
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False,
                         hide_parameters=True)


#: tries of a :func:`retry_if_disconnected` method: a database closing connections again and
#: again (a failover in progress) may close the fresh one too
DISCONNECTED_TRIES = 3


def retry_if_disconnected(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``method`` again (up to :data:`DISCONNECTED_TRIES` times in all) when it met a
    connection the database had closed.

    The pool does not ping before each use (a round trip per request, see
    :func:`make_engine`), so after a database restart or failover the first statement on each
    old connection fails; the pool then drops that connection and its peers, and the next try
    runs on a fresh one. Only for methods that are safe to repeat: reads, and answers
    (idempotent by event id).
    """
    @functools.wraps(method)
    def again(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        for _ in range(DISCONNECTED_TRIES - 1):
            try:
                return method(*args, **kwargs)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
        return method(*args, **kwargs)

    return again


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Apply every pending migration (``tutor db upgrade``)."""
    command.upgrade(_alembic_config(url), "head")


def is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration."""
    head = ScriptDirectory.from_config(_alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
