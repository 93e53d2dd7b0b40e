"""Storage under hostile conditions: racing schema creation, read-only files and mounts,
a PostgreSQL role without rights, a full disk while writing the report.

Each case ends with a one-paragraph error and exit status 2 (or works), and leaves
nothing half-written.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cli import app
from sim.store.database import open_store

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

TINY = """name = "tiny"
seeds = 2
horizon = 2.0
[population]
n_agents = 60
[[arms]]
name = "baseline"
[[arms]]
name = "banned"
[[arms.interventions]]
type = "ban"
kind = "troll"
start = 1.0
"""


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_paragraph_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "[SQL:" not in res.output
    assert "[parameters:" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    return res.output


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make a file or folder unwritable even for root (immutable attribute), like a
    read-only mount; a non-root user gets plain permissions."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)


# -- schema creation races -----------------------------------------------------------------
def _open_at_barrier(db: str, barrier, results) -> None:
    barrier.wait()
    try:
        open_store(db).dispose()
        results.put("ok")
    except Exception as exc:  # reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def _race(db: str, processes: int = 4) -> list[str]:
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_open_at_barrier, args=(db, barrier, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return out


def test_processes_creating_the_same_new_sqlite_file_all_succeed(tmp_path):
    for attempt in range(12):
        path = tmp_path / f"race{attempt}.db"
        assert _race(str(path)) == ["ok"] * 4
        con = sqlite3.connect(path)
        assert con.execute("SELECT count(*) FROM signsim_meta").fetchone()[0] == 2
        con.close()




@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_processes_creating_the_same_new_postgres_schema_all_succeed(pg_db):
    assert _race(pg_db) == ["ok"] * 4
    with psycopg.connect(pg_db) as con:
        assert con.execute("SELECT count(*) FROM signsim_meta").fetchone()[0] == 2


# -- read-only files and mounts ------------------------------------------------------------
def test_simulate_into_a_read_only_file_is_a_clear_error(tmp_path):
    db = tmp_path / "ro.db"
    assert invoke("simulate", "--db", str(db), "--agents", "50", "--horizon", "1",
                  "--no-progress").exit_code == 0
    before = db.read_bytes()
    with unwritable(db):
        out = one_paragraph_error(invoke("simulate", "--db", str(db), "--agents", "50",
                                         "--horizon", "1", "--no-progress"))
    assert "Cannot write to database" in out and "readonly" in out
    assert db.read_bytes() == before


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mount")
    (folder / "tiny.toml").write_text(TINY)
    res = subprocess.run(
        [sys.executable, "-c", "from cli import app; app()", "run", str(folder / "tiny.toml"),
         "--db", str(folder / "sim.db"), "--workers", "1", "--no-progress", "--out",
         str(folder / "report")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    con = sqlite3.connect(folder / "sim.db")  # the last connection to close removes -wal/-shm
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return folder


def test_a_wal_database_on_a_read_only_mount_is_still_readable(swept, tmp_path):
    db = swept / "sim.db"
    assert sorted(p.name for p in swept.glob("sim.db*")) == ["sim.db"]
    before = db.read_bytes()
    with unwritable(swept):
        with pytest.raises(sqlite3.OperationalError):  # the failure the fallback answers
            sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("SELECT count(*) FROM runs")
        res = invoke("runs", "--db", str(db), "--format", "csv")
        assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 5, res.output
        res = invoke("query", "SELECT count(*) AS n FROM runs", "--db", str(db), "--format", "csv")
        assert res.exit_code == 0 and res.output.split() == ["n", "4"], res.output
        res = invoke("stats", "1", "--db", str(db), "--json")
        assert res.exit_code == 0, res.output
        res = invoke("export", "1", str(tmp_path / "run1.csv"), "--db", str(db))
        assert res.exit_code == 0 and (tmp_path / "run1.csv").stat().st_size > 0, res.output
        res = invoke("report", "--scenario", "tiny", "--db", str(db), "--out",
                     str(tmp_path / "again"))
        assert res.exit_code == 0 and (tmp_path / "again" / "report.md").is_file(), res.output
    assert db.read_bytes() == before


def test_the_read_only_fallback_needs_the_folder_to_be_unwritable(swept):
    """Only a folder SQLite cannot write to opens immutable; elsewhere mode=ro stays."""
    from sim.store.connect import sqlite_read_only

    con = sqlite_read_only(swept / "sim.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # not immutable
    con.close()


def _report_with_small_file_limit(db: Path, out: Path, limit: int) -> subprocess.CompletedProcess:
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", "from cli import app; app()", "report", "--scenario", "tiny",
         "--db", str(db), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, preexec_fn=limit_files, timeout=300,
        cwd=ROOT,
    )


def test_a_full_disk_while_writing_the_report_leaves_no_partial_file(swept, tmp_path):
    out = tmp_path / "full"
    with unwritable(swept):  # read immutable: the reader itself writes no -shm file
        res = _report_with_small_file_limit(swept / "sim.db", out, 4096)
    assert res.returncode == 2, res.stderr
    text = res.stderr.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert "Cannot write the report of scenario 'tiny'" in text and "File too large" in text
    assert [p.name for p in out.iterdir()] == []  # no 0-byte PNG, no temp file
    # an earlier complete report is kept whole when a re-render fails
    good = swept / "report"
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    with unwritable(swept):
        assert _report_with_small_file_limit(swept / "sim.db", good, 4096).returncode == 2
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before


# -- a PostgreSQL role without rights ------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)")
def test_a_role_without_sequence_rights_gets_a_clear_error(pg_db, tmp_path):
    open_store(pg_db).dispose()
    role = f"signsim_nos_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        host = pg_db.split("@", 1)[1]
        url = f"postgresql://{role}@{host}"
        out = one_paragraph_error(invoke("simulate", "--db", url, "--agents", "50",
                                         "--horizon", "1", "--no-progress"))
        assert "permission denied for sequence runs_id_seq" in out
        (tmp_path / "tiny.toml").write_text(TINY)
        res = invoke("run", str(tmp_path / "tiny.toml"), "--db", url, "--workers", "1",
                     "--no-progress")
        out = one_paragraph_error(res)
        assert "4 of 4 runs" in out and "permission denied for sequence runs_id_seq" in out
        assert "INSERT INTO" not in out
        with psycopg.connect(pg_db) as con:
            assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        with psycopg.connect(pg_db, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
