"""A sweep on a real Dask cluster of separate processes, one worker killed mid-sweep.

``dask scheduler`` and two ``dask worker`` processes (nanny + worker each, one thread) are
started the way a user starts them on several machines; ``signsim run --dask tcp://...``
sends the sweep to them, every worker writing to one PostgreSQL database. One worker is
killed (SIGKILL of its process group) while it writes a run. Dask runs its task again on
the other worker; every (arm, seed) must still end with exactly one complete run, and no
run may be left ``running``, without ``--resume``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("SIGNSIM_TEST_PG_URL")
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(PG_URL is None, reason="SIGNSIM_TEST_PG_URL not set (set by .ci/run)"),
]

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("distributed")

#: 2 arms x 3 seeds; one run takes about 1-2 s on PostgreSQL.
SCENARIO = """
name = "cluster"
description = "A sweep on a Dask cluster, one worker killed."
horizon = 30.0
seeds = [1, 2, 3]

[population]
n_agents = 1000
mean_rate = 5.0

[[arms]]
name = "baseline"

[[arms]]
name = "moderation"
interventions = [{ type = "moderation", start = 5.0, recall = 0.6, strikes = 2 }]
"""


def _dask_cli() -> str:
    beside = Path(sys.executable).parent / "dask"
    found = str(beside) if beside.exists() else shutil.which("dask")
    if found is None:
        pytest.skip("the dask command line (distributed) is not installed")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: killpg


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler and two single-threaded workers, each a separate process group."""
    from distributed import Client

    dask, port = _dask_cli(), _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], tmp_path / "scheduler.log")]
    try:
        for i in range(2):
            procs.append(_start([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                 "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                                tmp_path / f"worker{i}.log"))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            _kill(proc)


def _writing(db: str) -> dict[int, str]:
    """The runs being written now (``running``, events committed): id -> claim holder."""
    with psycopg.connect(db) as con:
        rows = con.execute(
            "SELECT r.id, c.holder FROM runs r LEFT JOIN run_claims c ON c.run_id = r.id "
            "WHERE r.status = 'running' AND r.n_interactions > 0").fetchall()
    return {int(i): holder or "" for i, holder in rows}


def _in_group(holder: str, group: int) -> bool:
    """Whether a claim holder (``host:pid:token``) is a process of process group ``group``."""
    try:
        return os.getpgid(int(holder.rsplit(":", 2)[1])) == group
    except (ProcessLookupError, IndexError, ValueError):
        return False


def test_killed_worker_leaves_one_complete_run_per_pair(cluster, pg_db, tmp_path):
    address, workers = cluster
    scenario = tmp_path / "cluster.toml"
    scenario.write_text(SCENARIO)
    started = time.monotonic()
    sweep = subprocess.Popen(
        [sys.executable, "-c", "from cli import app; app()", "run", str(scenario),
         "--db", pg_db, "--dask", address, "--no-progress", "--out", str(tmp_path / "report")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        victim = workers[0]
        writing: dict[int, str] = {}
        deadline = time.monotonic() + 90
        # Each worker has one thread: two runs being written means both are mid-run.
        while len(writing) < 2:
            assert sweep.poll() is None, "the sweep ended before a worker could be killed"
            assert time.monotonic() < deadline, "the two workers never ran at once"
            time.sleep(0.1)
            try:
                writing = _writing(pg_db)
            except psycopg.errors.UndefinedTable:  # the schema is not there yet
                writing = {}
        killed = [i for i, holder in writing.items() if _in_group(holder, victim.pid)]
        _kill(victim)  # SIGKILL of nanny and worker, mid-run
        output, _ = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            _kill(sweep)
    text = output.decode()
    assert sweep.returncode == 0, text
    with psycopg.connect(pg_db) as con:
        runs = con.execute("SELECT id, arm, seed, status, n_interactions FROM runs "
                           "ORDER BY id").fetchall()
        stored = dict(con.execute("SELECT run_id, count(*) FROM interactions "
                                  "GROUP BY run_id").fetchall())
        claims = con.execute("SELECT holder FROM run_claims").fetchall()
    complete = [(arm, seed) for _, arm, seed, status, _ in runs if status == "complete"]
    assert sorted(complete) == [(a, s) for a in ("baseline", "moderation") for s in (1, 2, 3)]
    assert not [r for r in runs if r[3] == "running"], runs
    assert {r[3] for r in runs} <= {"complete", "aborted"}
    status = {r[0]: r[3] for r in runs}
    assert len(killed) == 1, writing
    # The run being written when its worker died: aborted when its task was taken over
    # (complete only if it finished in the instant before the kill, then reused).
    assert status[killed[0]] in ("aborted", "complete")
    if status[killed[0]] == "aborted":
        assert "runs of stopped workers were marked aborted and made again" in text, text
    for run_id, _, _, st, n in runs:
        if st == "complete":
            assert stored.get(run_id, 0) == n > 0  # every batch of a complete run is whole
    assert all(holder == "" for (holder,) in claims)  # every claim released
    assert "6 runs made" in text or "5 runs made" in text, text
    assert (tmp_path / "report" / "report.md").exists()
    assert time.monotonic() - started < 120
