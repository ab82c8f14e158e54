"""The SQLite metadata store: schema and migrations, runs, steps, attempts, lineage, cache, models."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from cloudml.adapters.local.metadata import SCHEMA_VERSION, MetadataStore
from cloudml.errors import CloudMLError

PLAN = {"steps": {"prep": {}, "train": {}, "evaluate": {}}}


@pytest.fixture
def db(tmp_path: Path) -> MetadataStore:
    return MetadataStore(tmp_path / "meta.db")


def _run(db: MetadataStore, run_id: str = "r1", pipeline: str = "demo") -> str:
    db.create_run(run_id, pipeline, {"lr": 0.1, "n": 3}, {"kind": "Pipeline"}, PLAN, "/spec")
    return run_id


# -- opening, schema, durability ---------------------------------------------------------------------------
def test_new_database_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    db = MetadataStore(tmp_path / "deep" / "meta.db")
    assert db.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "deep" / "meta.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "steps", "attempts", "artifacts", "step_io", "metrics", "step_params", "cache",
            "model_versions"} <= tables


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    first = MetadataStore(tmp_path / "meta.db")
    _run(first)
    first.close()
    again = MetadataStore(tmp_path / "meta.db")
    assert again.schema_version == SCHEMA_VERSION
    assert again.get_run("r1")["parameters"] == {"lr": 0.1, "n": 3}


def test_a_newer_schema_is_refused_with_an_upgrade_hint(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "meta.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(CloudMLError, match="newer than this cloudml") as info:
        MetadataStore(tmp_path / "meta.db")
    assert info.value.hint and "pip install -U cloudml" in info.value.hint


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "meta.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CloudMLError, match="is unreadable") as info:
        MetadataStore(tmp_path / "meta.db")
    assert str(tmp_path / "meta.db") in str(info.value)
    assert info.value.hint and "backup" in info.value.hint


def test_a_failed_transaction_is_rolled_back(db: MetadataStore) -> None:
    _run(db)
    with pytest.raises(RuntimeError), db.tx() as conn:
        conn.execute("UPDATE runs SET status = 'failed' WHERE id = 'r1'")
        raise RuntimeError("boom")
    assert db.get_run("r1")["status"] == "pending"
    db.set_run("r1", status="running")  # the store is still usable
    assert db.get_run("r1")["status"] == "running"


def test_a_process_killed_mid_transaction_loses_only_that_transaction(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    script = textwrap.dedent(f"""
        import os, signal
        from cloudml.adapters.local.metadata import MetadataStore
        db = MetadataStore({str(path)!r})
        db.create_run("kept", "demo", {{}}, {{}}, {{"steps": {{"a": {{}}}}}}, "/spec")
        db.set_step("kept", "a", status="succeeded")
        with db.tx() as conn:
            conn.execute("INSERT INTO runs (id, pipeline, status, parameters, spec, plan, spec_dir, created) "
                         "VALUES ('lost', 'demo', 'pending', '{{}}', '{{}}', '{{}}', '/', 0)")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    db = MetadataStore(path)
    assert [r["id"] for r in db.list_runs()] == ["kept"]
    assert db.steps("kept")[0]["status"] == "succeeded"
    assert db._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_roots_never_share_state(tmp_path: Path) -> None:
    one = MetadataStore(tmp_path / "one" / "meta.db")
    two = MetadataStore(tmp_path / "two" / "meta.db")
    _run(one)
    assert two.list_runs() == []
    with pytest.raises(KeyError):
        two.get_run("r1")


def test_a_second_connection_sees_committed_writes(tmp_path: Path) -> None:
    writer = MetadataStore(tmp_path / "meta.db")
    reader = MetadataStore(tmp_path / "meta.db")
    _run(writer)
    writer.set_run("r1", status="running")
    assert reader.get_run("r1")["status"] == "running"


def test_concurrent_writers_lose_nothing(db: MetadataStore) -> None:
    _run(db)

    def write(worker: int) -> None:
        for i in range(20):
            db.record_metrics("r1", f"step{worker}", {f"m{i}": float(i)})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metrics = db.metrics("r1")
    assert len(metrics) == 8
    assert all(values == {f"m{i}": float(i) for i in range(20)} for values in metrics.values())


# -- runs, steps, attempts ---------------------------------------------------------------------------------
def test_create_and_read_a_run(db: MetadataStore) -> None:
    _run(db)
    row = db.get_run("r1")
    assert (row["pipeline"], row["status"], row["spec_dir"], row["resumed"]) == ("demo", "pending", "/spec", 0)
    assert row["parameters"] == {"lr": 0.1, "n": 3}
    assert row["plan"] == PLAN and row["spec"] == {"kind": "Pipeline"}
    assert [(s["name"], s["status"], s["attempts"]) for s in db.steps("r1")] == [
        ("prep", "pending", 0), ("train", "pending", 0), ("evaluate", "pending", 0)]
    with pytest.raises(KeyError):
        db.get_run("nope")


def test_list_runs_newest_first_with_filter_and_limit(db: MetadataStore) -> None:
    for i, name in enumerate(["a", "b", "a"]):
        _run(db, f"r{i}", name)
    assert [r["id"] for r in db.list_runs()] == ["r2", "r1", "r0"]
    assert [r["id"] for r in db.list_runs("a")] == ["r2", "r0"]
    assert [r["id"] for r in db.list_runs(limit=1)] == ["r2"]
    assert db.list_runs()[0]["parameters"] == {"lr": 0.1, "n": 3}
    assert "plan" not in db.list_runs()[0]


def test_attempts_are_recorded_per_step(db: MetadataStore) -> None:
    _run(db)
    db.start_attempt("r1", "train", 1, "/logs/1")
    step = next(s for s in db.steps("r1") if s["name"] == "train")
    assert (step["status"], step["attempts"]) == ("running", 1)
    started = step["started"]
    db.finish_attempt("r1", "train", 1, "failed", 1)
    db.start_attempt("r1", "train", 2, "/logs/2")
    db.finish_attempt("r1", "train", 2, "succeeded", 0)
    db.set_step("r1", "train", status="succeeded", error=None)
    step = next(s for s in db.steps("r1") if s["name"] == "train")
    assert (step["status"], step["attempts"], step["started"]) == ("succeeded", 2, started)
    rows = db.attempts("r1", "train")
    assert [(a["attempt"], a["status"], a["exit_code"], a["log_dir"]) for a in rows] == [
        (1, "failed", 1, "/logs/1"), (2, "succeeded", 0, "/logs/2")]
    assert all(a["finished"] >= a["started"] for a in rows)
    assert [a["step"] for a in db.attempts("r1")] == ["train", "train"]
    assert db.attempts("r1", "prep") == []


# -- lineage, metrics, params, cache ---------------------------------------------------------------------------
def test_lineage_links_outputs_to_inputs(db: MetadataStore) -> None:
    _run(db)
    digest = "ab" * 32
    db.record_io("r1", "prep", "out", "train", digest, "dir", 10, "dataset")
    db.record_io("r1", "train", "in", "data", digest, "dir", 10, "dataset", "prep.outputs.train")
    db.record_io("r1", "train", "out", "model", "cd" * 32, "dir", 5, "model")
    assert [(r["step"], r["direction"], r["name"]) for r in db.io("r1")] == [
        ("prep", "out", "train"), ("train", "in", "data"), ("train", "out", "model")]
    assert [r["name"] for r in db.io("r1", "train", "in")] == ["data"]
    assert [r["name"] for r in db.io("r1", direction="out")] == ["train", "model"]
    assert [(p["run_id"], p["step"], p["name"]) for p in db.producers(digest)] == [("r1", "prep", "train")]
    # recording the same output again replaces the link instead of duplicating it
    db.record_io("r1", "prep", "out", "train", "ef" * 32, "dir", 10, "dataset")
    assert [r["digest"] for r in db.io("r1", "prep")] == ["ef" * 32]


def test_metrics_and_params_round_trip(db: MetadataStore) -> None:
    _run(db)
    db.record_metrics("r1", "evaluate", {"auc": 0.91, "per_class.a": 1})
    db.record_metrics("r1", "evaluate", {"auc": 0.93})
    db.record_params("r1", "train", {"n": "200", "lr": 0.1, "flag": True})
    assert db.metrics("r1") == {"evaluate": {"auc": 0.93, "per_class.a": 1.0}}
    assert db.params("r1") == {"train": {"n": "200", "lr": 0.1, "flag": True}}
    assert db.metrics("other") == {}


def test_cache_returns_the_newest_entry_within_its_age(db: MetadataStore) -> None:
    assert db.cache_get("k") is None
    db.cache_put("k", "r1", "train", {"model": "aa" * 32})
    db.cache_put("k", "r2", "train", {"model": "bb" * 32})
    with db.tx() as conn:  # make r1's entry clearly older, without sleeping
        conn.execute("UPDATE cache SET created = created - 100 WHERE run_id = 'r1'")
    hit = db.cache_get("k")
    assert hit is not None and (hit["run_id"], hit["outputs"]) == ("r2", {"model": "bb" * 32})
    assert db.cache_get("k", max_age=3600) is not None
    with db.tx() as conn:
        conn.execute("UPDATE cache SET created = created - 50 WHERE run_id = 'r2'")
    assert db.cache_get("k", max_age=10) is None
    assert db.cache_get("other") is None


# -- model registry ---------------------------------------------------------------------------------------------
def test_model_versions_are_numbered_per_group_and_idempotent(db: MetadataStore) -> None:
    a, b = "aa" * 32, "bb" * 32
    assert db.add_model_version("churn", a, "pending", {"auc": 0.9}, "r1", "register", {"t": "x"}, "first") == 1
    assert db.add_model_version("churn", a, "approved", {}, "r2", "register", {}, None) == 1  # same artifact
    assert db.add_model_version("churn", b, "approved", {}, "r3", "register", {}, None) == 2
    assert db.add_model_version("churn", a, "pending", {}, "r4", "register", {}, None) == 3  # back to a: new
    assert db.add_model_version("fraud", a, "pending", {}, None, None, {}, None) == 1
    rows = db.model_versions("churn")
    assert [(r["version"], r["digest"], r["approval"]) for r in rows] == [
        (3, a, "pending"), (2, b, "approved"), (1, a, "pending")]
    assert rows[-1]["metrics"] == {"auc": 0.9} and rows[-1]["tags"] == {"t": "x"}
    assert rows[-1]["description"] == "first"
    assert {(r["grp"], r["version"]) for r in db.model_versions()} == {
        ("churn", 1), ("churn", 2), ("churn", 3), ("fraud", 1)}


def test_set_approval(db: MetadataStore) -> None:
    db.add_model_version("churn", "aa" * 32, "pending", {}, None, None, {}, None)
    db.set_approval("churn", 1, "approved")
    assert db.model_versions("churn")[0]["approval"] == "approved"
    with pytest.raises(KeyError):
        db.set_approval("churn", 2, "approved")
    with pytest.raises(KeyError):
        db.set_approval("nope", 1, "approved")


def test_json_fields_survive_unicode_and_nesting(db: MetadataStore) -> None:
    params = {"name": "modèle-é", "nested": {"list": [1, 2.5, None]}}
    db.create_run("u", "demo", params, {"x": "ü"}, {"steps": {}}, "/spec")
    assert db.get_run("u")["parameters"] == params
    assert json.dumps(db.get_run("u")["spec"]) == json.dumps({"x": "ü"})
