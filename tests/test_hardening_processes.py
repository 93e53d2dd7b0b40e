"""`kill -9` of a `signsim run` leaves no process behind: pool workers and the fork server
notice that the sweep's process died and exit; the database stays consistent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LONG = """name = "long"
seeds = 4
horizon = 5000.0
[population]
n_agents = 2000
[recording]
metric_cadence = 0.0
"""


def children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def running_runs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM runs WHERE status = 'running' "
                               "AND n_interactions > 0").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


# A sweep started as a background job (``cmd &`` in a script, ``nohup``) inherits SIGINT
# ignored; its workers must still mark their runs aborted when it is killed.
@pytest.mark.parametrize("sigint", ["handled", "ignored"])
def test_workers_exit_when_the_sweep_process_is_killed(tmp_path, sigint):
    (tmp_path / "long.toml").write_text(LONG)
    db = tmp_path / "long.db"
    ignore = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " * (sigint == "ignored")
    proc = subprocess.Popen(
        [sys.executable, "-c", ignore + "from cli import app; app()", "run",
         str(tmp_path / "long.toml"),
         "--db", str(db), "--workers", "2", "--no-progress"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while running_runs(db) < 2:  # both workers are writing runs
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        left = children(proc.pid)
        assert len(left) >= 3  # fork server, two workers (and resource trackers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 40
        while any(alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in left if alive(p)], "processes left behind"
    finally:
        for pid in [proc.pid, *children(proc.pid)]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    con = sqlite3.connect(db)
    statuses = [s for (s,) in con.execute("SELECT status FROM runs ORDER BY id")]
    per_run = con.execute("SELECT r.n_interactions, count(i.seq) FROM runs r LEFT JOIN "
                          "interactions i ON i.run_id = r.id GROUP BY r.id").fetchall()
    con.close()
    assert statuses.count("aborted") == 2 and set(statuses) <= {"aborted", "complete"}
    assert all(counted == stored for counted, stored in per_run)  # every batch whole
