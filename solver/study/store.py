"""The run store: every solve of a study (and of the explorer) kept in one folder, no server needed.

Layout of a store folder::

    runs.sqlite          the table of runs (SQLite, write-ahead log), sweeps and their members
    runs/<key>-<t>.npz   one file per run: its states (N, M, D), float64

A run is keyed by the content hash of its canonical problem (``sweep.run_key``): the same problem is
the same run, whatever file or sweep it came from. Writes are atomic: the trajectories go to a
temporary file renamed into place, then one SQLite transaction inserts the row, which is the commit
point; a process killed before it leaves no row (a stray file at most, removed by ``tidy``), so
nothing half-written is ever listed. Several processes may write at once (SQLite's locking, a busy
timeout): for one key the first finished result wins, an error or a stopped run is replaced by a
finished one, and a file that lost the race is deleted. Runs that ended in an error or were stopped
count as *missing*, so rerunning a sweep computes exactly those and the runs never stored.
"""
from __future__ import annotations

import io
import json
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ProblemError
from ..io import write_atomic
from ..version import solver_version

#: Statuses of runs that did not finish; a sweep computes them again.
INCOMPLETE = ("error", "stopped")
#: Seconds a writer waits for another's transaction before giving up.
BUSY_TIMEOUT = 120.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, error TEXT,
    objective REAL, seconds REAL, iterations INTEGER, N INTEGER, M INTEGER, eps REAL, delta REAL,
    method TEXT, summary TEXT NOT NULL, problem TEXT NOT NULL, file TEXT, origin TEXT, host TEXT,
    version TEXT, created REAL NOT NULL, wall REAL);
CREATE TABLE IF NOT EXISTS sweeps (name TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep TEXT NOT NULL, key TEXT NOT NULL, params TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (sweep, key));
"""
#: Columns of ``RunStore.list`` rows, in order.
COLUMNS = ("key", "name", "status", "objective", "seconds", "iterations", "N", "M", "eps", "delta", "method",
           "origin", "host", "version", "created", "error")


@dataclass
class RunRecord:
    """One stored run: the canonical problem, the summary numbers, status and provenance; ``states``
    (N, M, D) when the run produced trajectories (not for errors)."""

    key: str
    status: str
    problem: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    states: np.ndarray | None = None
    origin: str = "cli"
    host: str = field(default_factory=socket.gethostname)
    version: str = field(default_factory=solver_version)
    created: float = field(default_factory=time.time)
    wall: float | None = None

    @property
    def name(self) -> str:
        return str(self.problem.get("name") or self.summary.get("name") or self.key[:12])


class RunStore:
    """A folder of runs (see the module docstring). ``RunStore(path)`` creates it if needed."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            (self.folder / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ProblemError("--store", f"cannot create {self.folder} ({err.strerror}); choose a writable folder") from None
        self.db = self.folder / "runs.sqlite"
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            con = sqlite3.connect(self.db, timeout=BUSY_TIMEOUT)
            try:
                # readers never wait for a writer; the mode stays in the file, so only the store's first
                # opener switches it. Two processes opening a new store at once can both try, and SQLite
                # answers the loser "database is locked" at once, without waiting (a CI sweep test failed
                # so): it tries again, and then finds the mode set
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
            finally:
                con.close()
            time.sleep(0.05)

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A short-lived connection (one per operation: safe across threads and processes) in one
        transaction (taking the write lock at once when ``write``); commits on success, rolls back on
        an exception."""
        con = sqlite3.connect(self.db, timeout=BUSY_TIMEOUT, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    # -- writing --------------------------------------------------------------------------------
    def put(self, record: RunRecord) -> bool:
        """Store ``record`` atomically. Returns whether it is now the stored run of its key (False when
        a finished run of the same problem was already there: the first result wins)."""
        file = None
        if record.states is not None:
            file = f"{record.key}-{uuid.uuid4().hex[:8]}.npz"
            self._write_states(self.folder / "runs" / file, record.states)
        s = record.summary
        row = (record.key, record.name, record.status, record.error, s.get("objective"), s.get("seconds"),
               s.get("iterations"), s.get("N"), s.get("M"), s.get("eps"), s.get("delta"), s.get("method"),
               json.dumps(s), json.dumps(record.problem), file, record.origin, record.host, record.version,
               record.created, record.wall)
        placeholders = ", ".join("?" * len(row))
        with self._connect(write=True) as con:
            old = con.execute("SELECT status, file FROM runs WHERE key = ?", (record.key,)).fetchone()
            replace = old is None or (old["status"] in INCOMPLETE and
                                      (record.status not in INCOMPLETE or old["status"] == "error"))
            if replace:
                con.execute(f"INSERT OR REPLACE INTO runs (key, name, status, error, objective, seconds, iterations, "
                            f"N, M, eps, delta, method, summary, problem, file, origin, host, version, created, wall) "
                            f"VALUES ({placeholders})", row)
        stale = file if not replace else (old["file"] if old is not None else None)
        if stale:
            (self.folder / "runs" / stale).unlink(missing_ok=True)
        return replace

    @staticmethod
    def _write_states(path: Path, states: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, states=np.asarray(states, dtype=np.float64))
        write_atomic(path, buffer.getvalue())

    def add_sweep(self, name: str, spec: dict[str, Any], members: list[tuple[str, dict[str, Any]]]) -> None:
        """Record a sweep (its file's spec) and its members (key, axis values), replacing an older
        definition of the same name."""
        with self._connect(write=True) as con:
            con.execute("INSERT OR REPLACE INTO sweeps (name, spec, created) VALUES (?, ?, ?)",
                        (name, json.dumps(spec), time.time()))
            con.execute("DELETE FROM sweep_runs WHERE sweep = ?", (name,))
            con.executemany("INSERT INTO sweep_runs (sweep, key, params, position) VALUES (?, ?, ?, ?)",
                            [(name, key, json.dumps(params), i) for i, (key, params) in enumerate(members)])

    def tidy(self) -> int:
        """Delete files no row refers to (left by a process killed between writing its file and its
        row, older than a minute so a writer's file is never taken). Returns how many."""
        with self._connect() as con:
            known = {r["file"] for r in con.execute("SELECT file FROM runs WHERE file IS NOT NULL")}
        removed = 0
        for path in (self.folder / "runs").iterdir():
            if path.name not in known and time.time() - path.stat().st_mtime > 60:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- reading --------------------------------------------------------------------------------
    def missing(self, keys: list[str]) -> list[str]:
        """The keys with no finished run (never stored, or stored as an error or stopped)."""
        with self._connect() as con:
            done = {r["key"] for r in con.execute(
                f"SELECT key FROM runs WHERE status NOT IN ({', '.join('?' * len(INCOMPLETE))})", INCOMPLETE)}
        return [k for k in keys if k not in done]

    def resolve(self, ref: str) -> str:
        """The full key for a key or a unique prefix of one (at least 4 characters)."""
        if len(ref) < 4:
            raise ProblemError("ID", f"give at least 4 characters of a run key (got {ref!r}); see runs list")
        with self._connect() as con:
            keys = [r["key"] for r in con.execute("SELECT key FROM runs WHERE key LIKE ?", (ref + "%",))]
        if not keys:
            raise ProblemError("ID", f"no run with key {ref!r} in {self.folder}; see runs list")
        if len(keys) > 1:
            raise ProblemError("ID", f"{ref!r} matches {len(keys)} runs; give more characters of the key")
        return keys[0]

    def get(self, ref: str, states: bool = True) -> RunRecord:
        """The run with key (or unique key prefix) ``ref``, with its states unless ``states`` is False."""
        key = self.resolve(ref)
        with self._connect() as con:
            r = con.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone()
        loaded = None
        if states and r["file"]:
            with np.load(self.folder / "runs" / r["file"]) as data:
                loaded = data["states"]
        return RunRecord(r["key"], r["status"], json.loads(r["problem"]), json.loads(r["summary"]), r["error"],
                         loaded, r["origin"], r["host"], r["version"], r["created"], r["wall"])

    def list(self, sweep: str | None = None) -> list[dict[str, Any]]:
        """Rows (``COLUMNS``) of every run, or of one sweep's runs with their axis values (``params``),
        newest first (a sweep's in its own order)."""
        cols = ", ".join(f"runs.{c}" for c in COLUMNS)
        with self._connect() as con:
            if sweep is None:
                rows = con.execute(f"SELECT {cols} FROM runs ORDER BY created DESC").fetchall()
                return [dict(r) for r in rows]
            if con.execute("SELECT 1 FROM sweeps WHERE name = ?", (sweep,)).fetchone() is None:
                raise ProblemError("SWEEP", f"no sweep named {sweep!r} in {self.folder}; see runs list --sweeps")
            rows = con.execute(f"SELECT {cols}, sweep_runs.params FROM sweep_runs JOIN runs ON runs.key = "
                               f"sweep_runs.key WHERE sweep = ? ORDER BY position", (sweep,)).fetchall()
        return [dict(r, params=json.loads(r["params"])) for r in rows]

    def summaries(self, sweep: str) -> list[dict[str, Any]]:
        """Each stored run of ``sweep``: its axis values (``params``), status and full summary."""
        with self._connect() as con:
            rows = con.execute("SELECT runs.key, runs.status, runs.summary, sweep_runs.params FROM sweep_runs "
                               "JOIN runs ON runs.key = sweep_runs.key WHERE sweep = ? ORDER BY position",
                               (sweep,)).fetchall()
        return [{"key": r["key"], "status": r["status"], "params": json.loads(r["params"]),
                 "summary": json.loads(r["summary"])} for r in rows]

    def sweeps(self) -> list[dict[str, Any]]:
        """Every sweep: name, members, how many are stored finished, its spec."""
        incomplete = ", ".join("?" * len(INCOMPLETE))
        with self._connect() as con:
            rows = con.execute(
                f"SELECT sweeps.name, sweeps.spec, sweeps.created, COUNT(sweep_runs.key) AS members, "
                f"SUM(CASE WHEN runs.status IS NOT NULL AND runs.status NOT IN ({incomplete}) THEN 1 ELSE 0 END) "
                f"AS finished FROM sweeps LEFT JOIN sweep_runs ON sweep_runs.sweep = sweeps.name LEFT JOIN runs ON "
                f"runs.key = sweep_runs.key GROUP BY sweeps.name ORDER BY sweeps.created DESC", INCOMPLETE).fetchall()
        return [dict(r, spec=json.loads(r["spec"]), finished=r["finished"] or 0) for r in rows]

    def sweep_spec(self, name: str) -> dict[str, Any]:
        with self._connect() as con:
            r = con.execute("SELECT spec FROM sweeps WHERE name = ?", (name,)).fetchone()
        if r is None:
            raise ProblemError("SWEEP", f"no sweep named {name!r} in {self.folder}; see runs list --sweeps")
        return json.loads(r["spec"])

    def files(self) -> list[str]:
        """Names of the trajectory files in the store (for tests and ``tidy``)."""
        return sorted(p.name for p in (self.folder / "runs").iterdir())
