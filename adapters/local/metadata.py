"""Metadata store: runs, steps, attempts, parameters, artifacts, metrics, lineage, cache and models in SQLite.

WAL mode, a versioned schema (``PRAGMA user_version``) and forward migrations applied on open. A
process killed at any moment leaves the last committed transaction intact. One store per backend
root; nothing is shared between two stores.

Example:
    >>> import tempfile, pathlib
    >>> db = MetadataStore(pathlib.Path(tempfile.mkdtemp()) / "meta.db")
    >>> db.schema_version == SCHEMA_VERSION
    True
    >>> db.create_run("r1", "demo", {"lr": 0.1}, {"kind": "Pipeline"}, {"steps": {}}, "/tmp")
    >>> db.get_run("r1")["status"]
    'pending'
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloudml.errors import CloudMLError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "MetadataStore"]

MIGRATIONS: list[list[str]] = [
    [  # version 1
        """CREATE TABLE runs (id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL,
            parameters TEXT NOT NULL, spec TEXT NOT NULL, plan TEXT NOT NULL, spec_dir TEXT NOT NULL,
            created REAL NOT NULL, started REAL, finished REAL, error TEXT, resumed INTEGER NOT NULL DEFAULT 0,
            tracking TEXT)""",
        """CREATE TABLE steps (run_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, cache_hit INTEGER NOT NULL DEFAULT 0, cache_key TEXT,
            started REAL, finished REAL, error TEXT, result TEXT, PRIMARY KEY (run_id, name))""",
        """CREATE TABLE attempts (run_id TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL,
            status TEXT NOT NULL, exit_code INTEGER, started REAL NOT NULL, finished REAL, log_dir TEXT NOT NULL,
            PRIMARY KEY (run_id, step, attempt))""",
        """CREATE TABLE artifacts (digest TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL,
            created REAL NOT NULL)""",
        """CREATE TABLE step_io (run_id TEXT NOT NULL, step TEXT NOT NULL, direction TEXT NOT NULL,
            name TEXT NOT NULL, digest TEXT NOT NULL, type TEXT, source TEXT,
            PRIMARY KEY (run_id, step, direction, name))""",
        "CREATE INDEX step_io_digest ON step_io (digest)",
        """CREATE TABLE metrics (run_id TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
            PRIMARY KEY (run_id, step, key))""",
        """CREATE TABLE step_params (run_id TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            PRIMARY KEY (run_id, step, key))""",
        """CREATE TABLE cache (cache_key TEXT NOT NULL, run_id TEXT NOT NULL, step TEXT NOT NULL,
            created REAL NOT NULL, outputs TEXT NOT NULL, PRIMARY KEY (cache_key, run_id))""",
        """CREATE TABLE model_versions (grp TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,
            approval TEXT NOT NULL, metrics TEXT NOT NULL, run_id TEXT, step TEXT, created REAL NOT NULL,
            tags TEXT NOT NULL, description TEXT, PRIMARY KEY (grp, version))""",
        """CREATE TABLE endpoints (name TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL)""",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


class MetadataStore:
    """All metadata of one local backend root. Thread-safe: writes are serialized by a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise CloudMLError(f"metadata database {self.path} is unreadable: {e}",
                               hint="restore it from a backup or move it aside to start fresh") from e

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise CloudMLError(f"{self.path} has schema {current}, newer than this cloudml ({SCHEMA_VERSION})",
                               hint="upgrade cloudml: pip install -U cloudml")
        for version in range(current, SCHEMA_VERSION):
            with self.tx() as db:
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on error.

        Nested calls on the same thread join the outer transaction, so a caller can group several
        writes into one commit: ``with store.tx(): store.set_step(...); store.cache_put(...)``.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, run_id: str, pipeline: str, parameters: dict[str, Any], spec: dict[str, Any],
                   plan: dict[str, Any], spec_dir: str) -> None:
        """Record a new run and one pending row per step."""
        now = time.time()
        with self.tx() as db:
            db.execute("INSERT INTO runs (id, pipeline, status, parameters, spec, plan, spec_dir, created) "
                       "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                       (run_id, pipeline, json.dumps(parameters), json.dumps(spec), json.dumps(plan), spec_dir, now))
            db.executemany("INSERT INTO steps (run_id, name, status) VALUES (?, ?, 'pending')",
                           [(run_id, name) for name in plan.get("steps", {})])

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run's row with JSON fields decoded (KeyError when unknown)."""
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise KeyError(run_id)
        row = rows[0]
        for key in ("parameters", "spec", "plan"):
            row[key] = json.loads(row[key])
        return row

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recent runs, newest first (without the large JSON fields)."""
        sql = "SELECT id, pipeline, status, parameters, created, started, finished, error FROM runs"
        args: tuple[Any, ...] = ()
        if pipeline:
            sql, args = sql + " WHERE pipeline = ?", (pipeline,)
        rows = self._rows(sql + " ORDER BY created DESC LIMIT ?", (*args, limit))
        for r in rows:
            r["parameters"] = json.loads(r["parameters"])
        return rows

    def set_run(self, run_id: str, **fields: Any) -> None:
        """Update run columns (status, started, finished, error, resumed)."""
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    # -- steps and attempts --------------------------------------------------------------------
    def set_step(self, run_id: str, step: str, **fields: Any) -> None:
        """Update step columns (status, attempts, cache_hit, cache_key, started, finished, error)."""
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE steps SET {cols} WHERE run_id = ? AND name = ?", (*fields.values(), run_id, step))

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """Every step of a run in plan order."""
        return self._rows("SELECT * FROM steps WHERE run_id = ? ORDER BY rowid", (run_id,))

    def start_attempt(self, run_id: str, step: str, attempt: int, log_dir: str) -> None:
        """Record the start of one attempt of a step."""
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO attempts (run_id, step, attempt, status, started, log_dir) "
                       "VALUES (?, ?, ?, 'running', ?, ?)", (run_id, step, attempt, time.time(), log_dir))
            db.execute("UPDATE steps SET attempts = ?, status = 'running', started = COALESCE(started, ?) "
                       "WHERE run_id = ? AND name = ?", (attempt, time.time(), run_id, step))

    def finish_attempt(self, run_id: str, step: str, attempt: int, status: str, exit_code: int | None) -> None:
        """Record how one attempt ended."""
        with self.tx() as db:
            db.execute("UPDATE attempts SET status = ?, exit_code = ?, finished = ? "
                       "WHERE run_id = ? AND step = ? AND attempt = ?",
                       (status, exit_code, time.time(), run_id, step, attempt))

    def attempts(self, run_id: str, step: str | None = None) -> list[dict[str, Any]]:
        """Attempts of a run (or of one step), oldest first."""
        if step:
            return self._rows("SELECT * FROM attempts WHERE run_id = ? AND step = ? ORDER BY attempt", (run_id, step))
        return self._rows("SELECT * FROM attempts WHERE run_id = ? ORDER BY started", (run_id,))

    # -- artifacts, lineage, metrics, params ---------------------------------------------------
    def record_io(self, run_id: str, step: str, direction: str, name: str, digest: str, kind: str, size: int,
                  otype: str | None, source: str | None = None) -> None:
        """Link an artifact to a step as an input or output (this is the lineage)."""
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO artifacts (digest, kind, size, created) VALUES (?, ?, ?, ?)",
                       (digest, kind, size, time.time()))
            db.execute("INSERT OR REPLACE INTO step_io (run_id, step, direction, name, digest, type, source) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, step, direction, name, digest, otype, source))

    def io(self, run_id: str, step: str | None = None, direction: str | None = None) -> list[dict[str, Any]]:
        """Artifacts read and written by a run's steps."""
        sql, args = "SELECT * FROM step_io WHERE run_id = ?", [run_id]
        if step:
            sql += " AND step = ?"
            args.append(step)
        if direction:
            sql += " AND direction = ?"
            args.append(direction)
        return self._rows(sql + " ORDER BY rowid", tuple(args))

    def producers(self, digest: str) -> list[dict[str, Any]]:
        """Which (run, step, output) produced an artifact."""
        return self._rows("SELECT * FROM step_io WHERE digest = ? AND direction = 'out'", (digest,))

    def record_metrics(self, run_id: str, step: str, metrics: dict[str, float]) -> None:
        """Store numeric metrics of a step (flattened keys like ``a.b``)."""
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO metrics (run_id, step, key, value) VALUES (?, ?, ?, ?)",
                           [(run_id, step, k, float(v)) for k, v in metrics.items()])

    def metrics(self, run_id: str) -> dict[str, dict[str, float]]:
        """``{step: {key: value}}`` for a run."""
        out: dict[str, dict[str, float]] = {}
        for r in self._rows("SELECT step, key, value FROM metrics WHERE run_id = ? ORDER BY rowid", (run_id,)):
            out.setdefault(r["step"], {})[r["key"]] = r["value"]
        return out

    def record_params(self, run_id: str, step: str, params: dict[str, Any]) -> None:
        """Store the resolved parameters a step ran with."""
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO step_params (run_id, step, key, value) VALUES (?, ?, ?, ?)",
                           [(run_id, step, k, json.dumps(v)) for k, v in params.items()])

    def params(self, run_id: str) -> dict[str, dict[str, Any]]:
        """``{step: {key: value}}`` of resolved step parameters."""
        out: dict[str, dict[str, Any]] = {}
        for r in self._rows("SELECT step, key, value FROM step_params WHERE run_id = ? ORDER BY rowid", (run_id,)):
            out.setdefault(r["step"], {})[r["key"]] = json.loads(r["value"])
        return out

    # -- cache ---------------------------------------------------------------------------------
    def cache_put(self, key: str, run_id: str, step: str, outputs: dict[str, str]) -> None:
        """Remember that ``key`` produced ``outputs`` (name -> digest)."""
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO cache (cache_key, run_id, step, created, outputs) VALUES (?, ?, ?, ?, ?)",
                       (key, run_id, step, time.time(), json.dumps(outputs)))

    def cache_get(self, key: str, max_age: float | None = None) -> dict[str, Any] | None:
        """The newest cache entry for ``key`` no older than ``max_age`` seconds, or None."""
        rows = self._rows("SELECT * FROM cache WHERE cache_key = ? ORDER BY created DESC LIMIT 1", (key,))
        if not rows:
            return None
        row = rows[0]
        if max_age is not None and time.time() - row["created"] > max_age:
            return None
        row["outputs"] = json.loads(row["outputs"])
        return row

    # -- models --------------------------------------------------------------------------------
    def add_model_version(self, group: str, digest: str, approval: str, metrics: dict[str, Any],
                          run_id: str | None, step: str | None, tags: dict[str, str],
                          description: str | None) -> int:
        """Register a new version (numbered 1, 2, ... per group); returns the version number.

        Idempotent: when the group's newest version has the same artifact digest, that version
        is returned and nothing is added (re-running a pipeline does not multiply versions).
        """
        with self.tx() as db:
            last = db.execute("SELECT version, digest FROM model_versions WHERE grp = ? ORDER BY version DESC LIMIT 1",
                              (group,)).fetchone()
            if last is not None and last["digest"] == digest:
                return int(last["version"])
            row = db.execute("SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE grp = ?", (group,)).fetchone()
            version = int(row[0]) + 1
            db.execute("INSERT INTO model_versions (grp, version, digest, approval, metrics, run_id, step, created, "
                       "tags, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (group, version, digest, approval, json.dumps(metrics), run_id, step, time.time(),
                        json.dumps(tags), description))
        return version

    def model_versions(self, group: str | None = None) -> list[dict[str, Any]]:
        """Registered versions, newest first."""
        sql = "SELECT * FROM model_versions"
        args: tuple[Any, ...] = ()
        if group:
            sql, args = sql + " WHERE grp = ?", (group,)
        rows = self._rows(sql + " ORDER BY grp, version DESC", args)
        for r in rows:
            r["metrics"] = json.loads(r["metrics"])
            r["tags"] = json.loads(r["tags"])
        return rows

    def set_approval(self, group: str, version: int, approval: str) -> None:
        """Change a version's approval status (KeyError when it does not exist)."""
        with self.tx() as db:
            cur = db.execute("UPDATE model_versions SET approval = ? WHERE grp = ? AND version = ?",
                             (approval, group, version))
            if cur.rowcount == 0:
                raise KeyError(f"{group} v{version}")
