"""Bad input never crashes: malformed and extreme problem files (Hypothesis), the command line's exit
code and one-line message, signals during a solve, warnings for meaningless combinations.

``MFC_HYPOTHESIS_EXAMPLES`` raises the number of generated files (CI runs a bounded number)."""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solver
from solver.budget import DEFAULT_BUDGET, check, needed_bytes
from solver.problem import KEYS
from solver.study.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("MFC_HYPOTHESIS_EXAMPLES", "150"))
VALID = {"source": {"points": [[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]]},
         "target": {"kind": "particles", "points": [[2.0, 0.0], [3.0, 1.0], [2.5, 0.5]]},
         "obstacles": [{"center": [1.5, 0.5], "radius": 0.2}], "eps": 0.05, "M": 6,
         "optimizer": {"method": "robust", "max_iter": 50}}

#: Values that break a field: wrong types, non-finite numbers, extremes, ragged or empty arrays.
JUNK = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, -1e-300, 10**12, -(10**12), 2**63]),
    st.integers(min_value=-10**6, max_value=10**10), st.floats(allow_nan=True, allow_infinity=True),
    st.just([]), st.just([[]]), st.just([[1.0, 2.0], [3.0]]), st.just([[1.0, math.nan]]), st.just({}),
    st.just([[1.0, 2.0, 3.0]]), st.lists(st.floats(allow_nan=True), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3))
#: Places in a valid file where junk goes (top-level keys, and fields inside the parts).
PATHS = [(k,) for k in KEYS if k not in ("name", "description", "paper")] + [
    ("source", "points"), ("target", "points"), ("target", "kind"), ("target", "weights"),
    ("obstacles", 0, "center"), ("obstacles", 0, "radius"), ("obstacles", 0, "kind"),
    ("optimizer", "method"), ("optimizer", "max_iter"), ("optimizer", "lr"), ("optimizer", "time_limit"),
    ("optimizer", "gtol"), ("dynamics", "kind")]


def put(spec: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(spec)
    node = out
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return out
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node)):
        node[path[-1]] = value
    return out


def validate(spec) -> None:
    """What the command line does before it solves: read and check the problem, then its size."""
    problem = solver.problem_from_dict(spec)
    check(problem, DEFAULT_BUDGET)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JUNK), min_size=1, max_size=3))
def test_malformed_files_give_one_line_naming_a_field(changes):
    """Any mix of junk values in a valid file either validates or raises ProblemError: one line,
    '<field>: <what is wrong>', within a second (validation never touches torch)."""
    spec = VALID
    for path, value in changes:
        spec = put(spec, path, value)
    clock = time.perf_counter()
    try:
        validate(json.loads(json.dumps(spec, allow_nan=True)))
    except solver.ProblemError as err:
        text = str(err)
        assert "\n" not in text and err.field and text.startswith(err.field + ": ")
    assert time.perf_counter() - clock < 1.0


@settings(max_examples=max(EXAMPLES // 3, 20), deadline=None)
@given(st.integers(min_value=1, max_value=2000), st.integers(min_value=2, max_value=10**9))
def test_sizes_are_refused_before_anything_is_allocated(N, M):
    """Any N, M: reading the file and checking its size take well under a second and allocate nothing
    of size N x M; a refusal names N, M and the budget."""
    spec = {"source": {"points": [[float(i), 0.0] for i in range(N)]}, "eps": 0.1, "M": M,
            "target": {"kind": "gaussian", "mean": [0.0, 0.0], "cov": 1.0}}
    clock = time.perf_counter()
    problem = solver.problem_from_dict(spec)
    try:
        check(problem, DEFAULT_BUDGET)
        assert needed_bytes(problem) <= DEFAULT_BUDGET
    except solver.ProblemError as err:
        assert str(err).startswith(f"problem: N = {N} particles with M = {M} time points need about ")
        assert "over the memory budget of 8 GB" in str(err)
    assert time.perf_counter() - clock < 0.5


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "solver", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("content, field", [
    ('{"source": {"points": [[0, 0]]}, "eps": 0.1,', "problem"),  # a JSON syntax error
    (json.dumps({"source": {"points": [[0, 0], [1, 1]]}, "target": {"kind": "grid", "low": [0, 0], "high": [1, 1],
                                                                     "values": [[1, 2], [3]]}}), "target.values"),
    (json.dumps(dict(VALID, M=1_000_000_000)), "problem"),  # 44.7 GiB before the budget
    (json.dumps(dict(VALID, eps=float("nan"))), "eps"),  # NaN, which Python's JSON reads
    (json.dumps(dict(VALID, eps=1e-30)), "eps"),  # a penalty beyond float64 (solver.scales)
])
def test_the_command_line_answers_bad_files_at_once(tmp_path, content, field, measured):
    """Exit code 2, one line on stderr naming the field, no traceback, within 2 s (torch is not loaded
    before the problem is valid)."""
    path = tmp_path / "p.json"
    path.write_text(content)
    clock = time.perf_counter()
    done = cli("solve", str(path), "--out", str(tmp_path / "out"))
    seconds = time.perf_counter() - clock
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}: "), done.stderr
    assert "Traceback" not in done.stderr
    measured(f"error on {field} after {seconds:.2f} s")
    assert seconds < 2.0


@pytest.mark.parametrize("option, value, field", [
    ("--max-iter", "0", "optimizer.max_iter"),  # was ignored as if not given (0 is falsy): a full solve ran
    ("--time-limit", "0", "optimizer.time_limit"),
    ("--memory", "-1", "--memory"),  # was "over the memory budget of -1 GB" for any problem
    ("--memory", "nan", "--memory"),
])
def test_the_command_line_refuses_bad_option_values_by_name(tmp_path, option, value, field):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(VALID))
    done = cli("solve", str(path), "--out", str(tmp_path / "out"), option, value)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}: "), done.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("command", [["reproduce", "fig1"], ["runs", "report", "fig9", "--store", "{store}"],
                                     ["solve", "{problem}"]])
def test_an_output_folder_that_cannot_be_made_is_one_line_naming_out(tmp_path, command):
    """``reproduce`` and ``runs report`` let mkdir's NotADirectoryError up as a traceback (reproduce after
    its solves); every command now makes its folder first, through ``io.output_folder``."""
    (tmp_path / "problem.json").write_text(json.dumps(VALID))
    RunStore(tmp_path / "store")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [a.format(store=tmp_path / "store", problem=tmp_path / "problem.json") for a in command]
    done = cli(*args, "--out", str(blocker / "out"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: --out: cannot create directory {blocker / 'out'} (Not a directory)")


@pytest.mark.parametrize("change, line", [
    ({"potential": [{"kind": "gaussian", "center": [0.5, 0.5], "height": 1e308, "width": 0.5}]},
     "(potential = inf): lower the potential's weights or heights"),
    ({"interaction": [{"kind": "gaussian", "strength": 1e308, "width": 0.5}]},
     "(interaction = inf): lower the interaction's strengths"),
    ({"p": 1e6}, "(kinetic = inf): lower p or the coordinates"),  # |u|^p past 1.0007^1e6 = 1e308
])
def test_a_problem_without_a_finite_iterate_ends_with_one_line_naming_the_term(tmp_path, change, line):
    """A valid file whose energies overflow everywhere: exit code 1 and one line on stderr naming the
    term that overflows at the start and the fields to lower, no traceback (it was a RuntimeError's,
    then a line naming nothing)."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(VALID, obstacles=None, **change)))
    done = cli("solve", str(path), "--out", str(tmp_path / "out"), "--quiet")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0] == "error: the start's energies are beyond float64 " + line


def test_a_source_point_inside_an_obstacle_is_solved_with_a_warning(tmp_path):
    spec = dict(VALID, obstacles=[{"center": [0.0, 0.0], "radius": 0.3}])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec))
    done = cli("solve", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 0
    assert done.stderr.strip() == ("warning: source: 1 of 3 points lie inside an obstacle; the penalty "
                                   "pushes them out first (move them out to solve the problem as drawn)")
    assert solver.problem_warnings(solver.problem_from_dict(VALID)) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_solve_writes_the_best_iterate_as_stopped(tmp_path, sig, code):
    """The paper's gd for up to 10^6 steps: a signal after its first progress ends the solve at its next
    report, and the files hold that iterate with status 'stopped' (written atomically: no temporary
    file is left)."""
    spec = dict(VALID, optimizer={"method": "gd", "max_iter": 1_000_000, "time_limit": 600})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "solver", "solve", str(path), "--out", str(out), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6.0)  # imports (about 3 s), then the descent runs
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["iterations"] > 0
    assert summary["solver_version"] and summary["seed"] == 0
    rows = (out / "trajectories.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 6  # header, then N x M rows
    assert sorted(p.name for p in out.iterdir()) == ["problem.json", "summary.json", "trajectories.csv"]
