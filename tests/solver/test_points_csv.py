"""Points CSV (``solver.io.read_points_csv``, the app's *Load points from CSV*): the exports read back to
the exact terminal positions, the usual spreadsheet dialects read, and a malformed file is refused in one
line that names the line at fault."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import solver
from solver.io import read_points_csv, terminal_csv, trajectories_csv
from solver.problem import problem_from_dict

from problems import gaussian_samples

ROOT = Path(__file__).resolve().parents[2]


def velocity_problem(N: int, M: int) -> solver.Problem:
    return problem_from_dict(gaussian_samples(N, M=M))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 4), st.just(2)),
              elements=st.floats(allow_nan=False, allow_infinity=False, width=64)))
def test_exports_read_back_to_the_exact_terminal_positions(states):
    """Loaded into the app, a terminal-points export or a trajectories export (their first columns are
    the particle's index, and the step and time) gives the terminal positions bitwise (%.17g round-trips
    float64); before, the first two columns were read as coordinates (index and x0)."""
    N, M, _ = states.shape
    problem = velocity_problem(N, M)
    for text in (terminal_csv(problem, states), trajectories_csv(problem, states)):
        np.testing.assert_array_equal(read_points_csv(text, dim=2), states[:, -1])


def test_acceleration_exports_give_positions_not_velocities():
    problem = problem_from_dict(json.loads((ROOT / "assets" / "fig5_acceleration.json").read_text()))
    states = np.random.default_rng(0).normal(size=(problem.N, problem.M, 2 * problem.dynamics.dim))
    assert problem.dynamics.state_names()[-1].startswith("v")  # x0, x1, v0, v1: the velocities last
    for text in (terminal_csv(problem, states), trajectories_csv(problem, states)):
        np.testing.assert_array_equal(read_points_csv(text, dim=problem.dynamics.dim),
                                      states[:, -1, :problem.dynamics.dim])


@pytest.mark.parametrize("text", [
    "1,2\n3,4",
    "x;y\n1;2\n3;4",  # semicolons (spreadsheets with a decimal comma elsewhere)
    "1\t2\n3\t4\n",  # tabs
    "1 2\n  3   4  ",  # runs of spaces (.txt)
    '"1","2"\n"3","4"',  # quoted numbers
    "\ufeffx,y\r\n1,2\r\n3,4\r\n",  # a byte-order mark, Windows line ends
    "1,2,\n3,4,",  # a delimiter ending each line
    "Y,X\n2,1\n4,3",  # named columns in another order
    "id,x,y,weight\n0,1,2,0.5\n1,3,4,0.5",  # named among others
    "\n1,2\n\n3,4\n\n",  # blank lines
])
def test_spreadsheet_dialects_read(text):
    np.testing.assert_array_equal(read_points_csv(text, dim=2), [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("text, message", [
    ("", "the CSV file is empty"),
    ("x,y\n", "the CSV has a header row but no points"),
    ("x,y\n1,2\n3,oops\n", "line 3: 'oops' is not a number"),
    ("0x10,2\n", "line 1: '0x10' is not a number"),  # a number among the fields: a point, not a header
    ("1,2\n3\n", "line 2 has 1 column where the first row has 2"),
    ("x,y,z\n1,2\n", "line 2 has 2 columns where the header has 3"),
    ("1,2\nnan,1\n", "line 2: NaN or infinite values"),
    ("1,2\n3,inf\n", "line 2: NaN or infinite values"),
    ("1\n2\n", "has 1 column but the scene needs 2 coordinates per point"),
])
def test_malformed_files_are_refused_in_one_line(text, message):
    with pytest.raises(solver.ProblemError) as refused:
        read_points_csv(text, "source CSV", dim=2)
    assert str(refused.value).startswith(f"source CSV: {message}") and "\n" not in str(refused.value)
