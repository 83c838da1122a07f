"""Erasure leaves nothing behind on disk: not in SQLite's database file, write-ahead log or
shared-memory file, and, after ``tutor db purge-erased``, not in PostgreSQL's table files.

(tests/serving/test_privacy.py checks what the database returns; these read the bytes.)
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.admin import LEARNER_TABLES
from api.app import create_app
from tutor.cli import app as tutor_cli

from .conftest import Backend, _sqlite_backend, make_tenant_on, new_event_id

ITEMS = ["mini.a.mid", "mini.c.1", "mini.ac", "mini.a.easy"]


def distinctive_id() -> str:
    return f"erase-me-{uuid.uuid4().hex}"


def record(client: TestClient, headers: dict[str, str], learner: str, n: int) -> None:
    for i in range(n):
        r = client.post(f"/v1/learners/{learner}/answers", headers=headers,
                        json={"item_id": ITEMS[i % len(ITEMS)], "correct": i % 3 != 0,
                              "event_id": new_event_id(), "response_ms": 1000 + i})
        assert r.status_code == 200, r.text


def sqlite_files(backend: Backend) -> list[Path]:
    main = Path(backend.database_url.removeprefix("sqlite:///"))
    return [p for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()]


def traces(files: list[Path], needle: str) -> dict[str, int]:
    """How often ``needle`` occurs in each file (files without it left out)."""
    found = {p.name: p.read_bytes().count(needle.encode()) for p in files}
    return {name: n for name, n in found.items() if n}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Backend]:
    """A SQLite database of the test's own: its files hold only what this test wrote."""
    backend = _sqlite_backend(tmp_path)
    yield backend
    backend.engine.dispose()


def test_sqlite_erasure_leaves_no_trace_in_any_file(sqlite_db: Backend) -> None:
    """After DELETE, the -wal file still held the learner id ~200 times (and the main file was
    clean only because this machine's SQLite build turns secure_delete on)."""
    t = make_tenant_on(sqlite_db.engine)
    learner, other = distinctive_id(), distinctive_id()
    with TestClient(create_app(sqlite_db.settings())) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:  # the app's connections delete securely, whatever the build
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        record(client, t.headers, learner, 60)
        record(client, t.headers, other, 5)
        assert client.get(f"/v1/learners/{learner}/export", headers=t.headers).status_code == 200
        assert traces(sqlite_files(sqlite_db), learner), "the learner is not on disk to begin with"
        assert client.delete(f"/v1/learners/{learner}", headers=t.headers).status_code == 204
        # while the server still runs, with its connections open
        assert traces(sqlite_files(sqlite_db), learner) == {}
        # the other learner is intact
        assert client.get(f"/v1/learners/{other}/history",
                          headers=t.headers).json()["events"][4]["seq"] == 5
        client.app.state.service.engine.dispose()  # type: ignore[attr-defined]
    assert traces(sqlite_files(sqlite_db), learner) == {}
    assert traces(sqlite_files(sqlite_db), other)


def test_purge_erased_cleans_a_sqlite_file_erased_without_secure_delete(
        sqlite_db: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Erasures made before secure_delete (or by another program) leave bytes behind; `tutor
    db purge-erased` removes them."""
    t = make_tenant_on(sqlite_db.engine)
    learner = distinctive_id()
    with TestClient(create_app(sqlite_db.settings())) as client:
        record(client, t.headers, learner, 30)
        client.app.state.service.engine.dispose()  # type: ignore[attr-defined]
    sqlite_db.engine.dispose()
    path = sqlite_files(sqlite_db)[0]
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA secure_delete=OFF")
    old.execute("DELETE FROM events WHERE learner_id = ?", (learner,))
    old.execute("DELETE FROM learners WHERE learner_id = ?", (learner,))
    old.close()
    assert traces(sqlite_files(sqlite_db), learner), "nothing left behind to purge"
    monkeypatch.setenv("TUTOR_DATABASE_URL", sqlite_db.database_url)
    done = CliRunner().invoke(tutor_cli, ["db", "purge-erased", "--json"])
    assert done.exit_code == 0, done.output
    assert traces(sqlite_files(sqlite_db), learner) == {}


def relation_files(conn: sa.Connection, tables: tuple[str, ...]) -> dict[str, str]:
    """Relation -> file (relative to the data directory) of ``tables``, their indexes and
    their TOAST tables and indexes."""
    rows = conn.execute(sa.text("""
        SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c
        WHERE c.oid IN (
            SELECT t.oid FROM pg_class t WHERE t.relname = ANY(:tables)
            UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                  WHERE t.relname = ANY(:tables)
            UNION SELECT t.reltoastrelid FROM pg_class t WHERE t.relname = ANY(:tables)
            UNION SELECT i.indexrelid FROM pg_index i JOIN pg_class t
                  ON t.reltoastrelid = i.indrelid WHERE t.relname = ANY(:tables))
        """), {"tables": list(tables)}).all()
    return {name: path for name, path in rows if path}


def pg_traces(engine: sa.Engine, needle: str) -> dict[str, int]:
    """How often ``needle`` occurs in the files of the learner tables (and of pg_statistic,
    where ANALYZE may have copied values), read by the server (pg_read_binary_file: a
    superuser may read files of its data directory), after a CHECKPOINT wrote every page."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("CHECKPOINT")
        found = {}
        for name, path in relation_files(conn, (*LEARNER_TABLES, "pg_statistic")).items():
            data = conn.execute(sa.text("SELECT pg_read_binary_file(:p)"), {"p": path}).scalar()
            count = bytes(data).count(needle.encode())
            if count:
                found[name] = count
    return found


def test_postgres_purge_erased_leaves_no_trace_in_the_table_files(
        pg_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL kept an erased learner's rows in its heap (dead tuples) until VACUUM FULL;
    `tutor db purge-erased` rewrites the learner tables."""
    t = make_tenant_on(pg_backend.engine)
    learner, other = distinctive_id(), distinctive_id()
    with TestClient(create_app(pg_backend.settings())) as client:
        # an experiment runs: the learners' assignments are rows to purge too
        assert client.post("/v1/experiments", headers=t.headers, json={
            "name": "purge", "arms": [{"name": "a"}, {"name": "b"}]}).status_code == 201
        record(client, t.headers, learner, 40)
        record(client, t.headers, other, 3)
        assert client.delete(f"/v1/learners/{learner}", headers=t.headers).status_code == 204
        client.app.state.service.engine.dispose()  # type: ignore[attr-defined]
    left = pg_traces(pg_backend.engine, learner)
    assert left.get("events"), f"the erased rows are not in the heap to begin with: {left}"
    assert left.get("experiment_assignments"), f"no erased assignment in the heap: {left}"
    for name, value in pg_backend.env().items():
        if name.startswith("TUTOR_"):
            monkeypatch.setenv(name, value)
    done = CliRunner().invoke(tutor_cli, ["db", "purge-erased", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["rewritten"] == list(LEARNER_TABLES)
    assert pg_traces(pg_backend.engine, learner) == {}
    # what was not erased is all there
    assert pg_traces(pg_backend.engine, other).get("events")
    with pg_backend.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events WHERE learner_id = :l"),
                            {"l": other}).scalar() == 3
