"""Reading and writing runs: trajectories CSV, summary JSON, and whole sessions (problem + result).

Files are written atomically (``write_atomic``): to a temporary file in the same folder, flushed to
disk, then renamed into place, so a killed process leaves the old file or the new one, never half of one.

Trajectories CSV: one row per particle and time point, columns ``particle,step,t,x0,..,x{d-1}``
(and ``v0,..`` under acceleration control); step 0 is the initial point, t = step h.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .problem import Problem, ProblemError, problem_from_dict


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """The folder ``path``, created if missing; a path that cannot be one raises the one-line
    ProblemError naming ``option`` (before any work whose results would go there)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ProblemError(option, f"cannot create directory {out} ({err.strerror}); choose a writable path") from None
    return out


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trajectory_columns(problem: Problem) -> list[str]:
    return ["particle", "step", "t"] + problem.dynamics.state_names()


def trajectories_csv(problem: Problem, states: np.ndarray) -> str:
    """CSV text of the (N, M, D) states, N x M rows."""
    N, M, D = states.shape
    particle = np.repeat(np.arange(N), M)
    step = np.tile(np.arange(M), N)
    t = step / (M - 1)
    table = np.column_stack([particle, step, t, states.reshape(N * M, D)])
    buf = io.StringIO()
    buf.write(",".join(trajectory_columns(problem)) + "\n")
    fmt = ["%d", "%d"] + ["%.17g"] * (D + 1)
    np.savetxt(buf, table, delimiter=",", fmt=fmt)
    return buf.getvalue()


def terminal_csv(problem: Problem, states: np.ndarray) -> str:
    """CSV text of the terminal states: ``particle,x0,..`` (and ``v0,..``)."""
    N = states.shape[0]
    table = np.column_stack([np.arange(N), states[:, -1]])
    buf = io.StringIO()
    buf.write(",".join(["particle"] + problem.dynamics.state_names()) + "\n")
    np.savetxt(buf, table, delimiter=",", fmt=["%d"] + ["%.17g"] * states.shape[2])
    return buf.getvalue()


#: Column names that give a point's coordinates, in order, when a points CSV has a header: the
#: exports' (``state_names``: x0, x1, ..) or the usual x, y, z.
COORDINATE_NAMES = (("x0", "x1", "x2"), ("x", "y", "z"))


def _fields(line: str, delimiter: str | None) -> list[str]:
    """A CSV line's fields, each stripped of spaces and of the quotes spreadsheets put around numbers (a
    delimiter ending the line, as some spreadsheets write, ends no field)."""
    line = line.strip()
    if delimiter is not None and line.endswith(delimiter):
        line = line[: -len(delimiter)]
    return [f.strip().strip('"').strip("'").strip() for f in line.split(delimiter)]


def _columns(n: int) -> str:
    return f"{n} column" + ("" if n == 1 else "s")


def _number(field: str) -> float | None:
    try:
        return float(field)
    except ValueError:
        return None


def read_points_csv(text: str, field: str = "points", dim: int | None = None) -> np.ndarray:
    """Points from CSV text, one per row: numbers separated by commas (or semicolons, tabs or spaces,
    whichever the file uses), optionally quoted, under an optional header row. With ``dim``, a point's
    ``dim`` coordinates: the header's columns x0, x1, .. (the exports' names, ``terminal_csv``) or x, y, z
    where it names them, else the first ``dim`` columns; a trajectories export (``particle``, ``step``
    columns, ``trajectories_csv``) gives its points at the last step. Raises ProblemError (one line,
    naming the line at fault)."""
    lines = [(k, ln) for k, ln in enumerate(text.lstrip("\ufeff").splitlines(), 1) if ln.strip()]
    if not lines:
        raise ProblemError(field, "the CSV file is empty; give one point per row, e.g. 0.5,1.0")
    sample = lines[0][1] + (lines[1][1] if len(lines) > 1 else "")
    delimiter = next((d for d in (",", ";", "\t") if d in sample), None)  # None: runs of spaces
    header = [f.lower() for f in _fields(lines[0][1], delimiter)]
    if any(_number(f) is not None for f in header):
        header = []  # a first row with a number in it is a point (a header names every column)
    else:
        lines = lines[1:]
    if not lines:
        raise ProblemError(field, "the CSV has a header row but no points; give one point per row below it")
    rows = []
    width = len(header) if header else None  # every row has the header's columns, or the first row's
    for k, ln in lines:
        fields = _fields(ln, delimiter)
        values = [_number(f) for f in fields]
        if None in values:
            raise ProblemError(field, f"line {k}: {fields[values.index(None)]!r} is not a number; use numbers "
                                      "separated by commas, one point per row")
        if not all(math.isfinite(v) for v in values):
            raise ProblemError(field, f"line {k}: NaN or infinite values; give finite coordinates")
        width = len(values) if width is None else width
        if len(values) != width:
            raise ProblemError(field, f"line {k} has {_columns(len(values))} where the "
                                      f"{'header has' if header else 'first row has'} {width}; "
                                      "every row needs the same columns")
        rows.append(values)
    arr = np.asarray(rows, dtype=np.float64)
    if dim is None:
        return arr
    if {"particle", "step"} <= set(header):
        step = arr[:, header.index("step")]
        arr = arr[step == step.max()]
    named = next((names[:dim] for names in COORDINATE_NAMES if set(names[:dim]) <= set(header)), None)
    if named is not None:
        return arr[:, [header.index(name) for name in named]]
    if arr.shape[1] < dim:
        raise ProblemError(field, f"has {_columns(arr.shape[1])} but the scene needs {dim} coordinates per point")
    return arr[:, :dim]


def session_to_json(problem: Problem, states: np.ndarray | None, summary: dict[str, Any] | None) -> str:
    """A whole session: the problem spec, and the result (trajectories and summary) if there is one."""
    doc = {"format": "mfc-explorer-session/1", "problem": problem.to_spec(),
           "result": None if states is None else {"states": states.tolist(), "summary": summary or {}}}
    return json.dumps(doc)


def session_from_json(text: str) -> tuple[Problem, np.ndarray | None, dict[str, Any] | None]:
    """Inverse of ``session_to_json``; a bare problem file is accepted too."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProblemError("session", f"not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(doc, dict):
        raise ProblemError("session", "must be a JSON object")
    if "problem" not in doc:
        return problem_from_dict(doc), None, None
    problem = problem_from_dict(doc["problem"])
    result = doc.get("result")
    if not result:
        return problem, None, None
    if not isinstance(result, dict) or "states" not in result:
        raise ProblemError("session.result", 'must be {"states": [...], "summary": {...}}; export the session again')
    shape = (problem.N, problem.M, problem.dynamics.state_dim)
    try:
        states = np.asarray(result["states"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ProblemError("session.result.states", f"must be numbers of shape (N, M, D) = {shape}") from None
    if states.shape != shape or not np.all(np.isfinite(states)):
        raise ProblemError("session.result.states", f"must be finite numbers of shape (N, M, D) = {shape} "
                                                    f"(got {states.shape}); export the session again")
    summary = result.get("summary")
    if not isinstance(summary, dict):
        return problem, states, None
    iteration = summary.get("iteration", 0)
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise ProblemError("session.result.summary.iteration", f"must be a whole number >= 0 (got {iteration!r}); "
                                                               "export the session again")
    if not isinstance(summary.get("status", ""), str):
        raise ProblemError("session.result.summary.status", f"must be a string (got {summary['status']!r}); "
                                                            "export the session again")
    return problem, states, summary
