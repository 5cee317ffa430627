"""Problem files: validation messages (one line naming the field and the fix) and the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from solver import ProblemError, problem_from_dict

BASE = {"source": {"points": [[0, 0], [1, 0]]}, "target": {"kind": "particles", "points": [[2, 0], [3, 0]]}}


@pytest.mark.parametrize("change, field", [
    ({"eps": 0}, "eps"), ({"eps": -1}, "eps"), ({"M": 1}, "M"), ({"M": 2.5}, "M"), ({"p": 1}, "p"),
    ({"delta": "tiny"}, "delta"), ({"target": {"kind": "particles", "points": []}}, "target.points"),
    ({"target": {"kind": "blob"}}, "target.kind"), ({"source": {"points": [[0, 0], [1]]}}, "source.points"),
    ({"target": {"kind": "gaussian", "mean": [0, 0], "cov": [[1, 2], [2, 1]]}}, "target.cov"),
    ({"obstacles": [{"center": [0, 0], "radius": -1}]}, "obstacles[0].radius"),
    ({"optimizer": {"method": "magic"}}, "optimizer.method"),
    ({"dynamics": {"kind": "linear", "A": [[0, 0], [0, 0]], "B": [[1], [0]]}}, "dynamics"),
    ({"init": "random"}, "init"),
    # too few time points to steer the terminal state (the steering's Gramian was singular: a traceback)
    ({"dynamics": {"kind": "acceleration"}, "M": 3}, "M"),
    ({"dynamics": {"kind": "linear", "A": [[0, 1], [0, 0]], "B": [[0], [1]]}, "M": 2}, "M"),
    # a rotation at angular speed 4 pi sampled every h = 1/4: Ad = -I, so Bd, Ad Bd are parallel
    ({"dynamics": {"kind": "linear", "A": [[0, -4 * np.pi], [4 * np.pi, 0]], "B": [[1], [0]]}, "M": 5}, "M"),
])
def test_bad_input_names_the_field(change, field):
    with pytest.raises(ProblemError) as err:
        problem_from_dict(dict(BASE, **change))
    assert err.value.field == field
    assert "\n" not in str(err.value) and str(err.value).startswith(field + ":")


@pytest.mark.parametrize("dynamics, M", [
    ({"kind": "acceleration"}, 4), ({"kind": "linear", "A": [[0, 1], [0, 0]], "B": [[0], [1]]}, 3),
    ({"kind": "linear", "A": [[0, -4 * np.pi], [4 * np.pi, 0]], "B": [[1], [0]]}, 6)])
def test_enough_time_points_to_steer_are_accepted_and_solve(dynamics, M):
    """The fewest time points that reach every terminal state (the refused cases above plus one) solve:
    the particles reach their target states (penalty weight 1/eps = 1e4, delta 0.1)."""
    from solver import solve
    spec = dict(BASE, dynamics=dynamics, M=M, eps=1e-4, delta=0.1, target={"kind": "particles", "points": [[2, 0], [3, 0]]})
    if dynamics["kind"] == "acceleration":
        spec["target"]["velocities"] = [[0, 0], [0, 0]]
    result = solve(problem_from_dict(spec))
    assert result.final.status == "converged"
    end = result.states[np.argsort(result.states[:, -1, 0]), -1]  # terminal states (with velocities)
    target = np.zeros_like(end)
    target[:, 0] = [2, 3]
    assert np.allclose(end, target, atol=1e-4)  # 1e-4: the soft penalty stops ~4e-6 short (measured)


@pytest.mark.parametrize("target, field", [
    ({"kind": "uniform", "low": [1, 1], "high": [2, 2]}, "target.low"),
    ({"kind": "gaussian", "mean": [1, 1], "cov": 0.1}, "target.mean"),
    ({"kind": "mixture", "components": [{"weight": 1, "mean": [1, 1, 0, 0], "cov": [[0.1, 0], [0, 0.1]]}]},
     "target.components[0].cov"),
])
def test_a_target_of_positions_alone_under_acceleration_control_is_told_the_state(target, field):
    """Under acceleration control the terminal constraint acts on (x, v): a continuum target given in
    positions alone (the natural mistake) is told which coordinates to give, not only how many."""
    spec = {"dynamics": {"kind": "acceleration"}, "source": {"points": [[0, 0], [1, 0]]}, "target": target}
    with pytest.raises(ProblemError) as err:
        problem_from_dict(spec)
    assert err.value.field == field
    assert "x0, x1, v0, v1" in str(err.value) and "\n" not in str(err.value)
    print(err.value)


def test_delta_auto_uses_the_dimension_of_the_constrained_state():
    p = problem_from_dict(dict(BASE, M=3))
    assert p.delta == pytest.approx(2 ** (-0.99 / 2))  # eq. (58), d = 2
    acc = problem_from_dict({"dynamics": {"kind": "acceleration"}, "source": {"points": [[0], [1], [2]]},
                             "target": {"kind": "particles", "points": [[2], [3], [4]]}, "M": 5})
    assert acc.delta == pytest.approx(3 ** (-0.99 / 2))  # (x, v) in R^2 (section 4.6)


def test_obstacle_weight_defaults_to_one_over_h_eps():
    p = problem_from_dict(dict(BASE, M=11, eps=0.1, obstacles=[{"center": [1, 1], "radius": 0.2}]))
    assert p.obstacles.weight == pytest.approx(1 / (0.1 * 0.1))  # c_Omega = 1/(h eps), section 4.5


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "solver", *args], capture_output=True, text=True, timeout=300)


def test_cli_solve_writes_trajectories_and_summary(tmp_path):
    spec = dict(BASE, M=4, eps=0.01)
    (tmp_path / "p.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    res = run_cli("solve", str(tmp_path / "p.json"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    lines = (out / "trajectories.csv").read_text().splitlines()
    assert lines[0] == "particle,step,t,x0,x1" and len(lines) == 1 + 2 * 4
    first = np.array(lines[1].split(","), dtype=float)
    assert first.tolist() == [0, 0, 0, 0, 0]  # step 0 is the source point
    summary = json.loads((out / "summary.json").read_text())
    for key in ("objective", "kinetic", "nonlocal", "potential", "iterations", "seconds", "status", "N", "M",
                "eps", "delta", "w2sq_exact", "w2sq_terminal"):
        assert key in summary
    assert summary["w2sq_exact"] == pytest.approx(4.0)  # both points move by 2: W2^2 = 4 exactly
    assert summary["objective"] == pytest.approx(summary["kinetic"] + summary["nonlocal"] + summary["potential"])


def test_cli_acceleration_csv_has_velocities(tmp_path):
    spec = {"dynamics": {"kind": "acceleration"}, "source": {"points": [[0.0], [1.0]]},
            "target": {"kind": "particles", "points": [[2.0], [3.0]], "velocities": [[0.0], [0.0]]}, "M": 5}
    (tmp_path / "a.json").write_text(json.dumps(spec))
    res = run_cli("solve", str(tmp_path / "a.json"), "--out", str(tmp_path / "o"), "--quiet")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "trajectories.csv").read_text().splitlines()[0] == "particle,step,t,x0,v0"


@pytest.mark.parametrize("content, field", [
    ('{"eps": -1, "source": {"points": [[0, 0]]}, "target": {"kind": "particles", "points": [[1, 1]]}}', "eps"),
    ("{not json", "problem"),
    ('{"source": {"points": [[0, 0]]}, "target": {"kind": "particles", "points": [[1, 1]]}, "M": 1}', "M"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, content, field):
    (tmp_path / "bad.json").write_text(content)
    res = run_cli("solve", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: {field}:")
    assert "Traceback" not in res.stderr


def test_cli_missing_file_exits_2(tmp_path):
    res = run_cli("solve", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "not found" in res.stderr


def test_cli_writes_the_canonical_problem(tmp_path):
    """DIR/problem.json is the problem's canonical form: it reads back to the same problem."""
    from solver import load_problem

    (tmp_path / "p.json").write_text(json.dumps(dict(BASE, M=3, eps=0.05)))
    res = run_cli("solve", str(tmp_path / "p.json"), "--out", str(tmp_path / "o"), "--quiet", "--method", "lbfgs")
    assert res.returncode == 0, res.stderr
    written = json.loads((tmp_path / "o" / "problem.json").read_text())
    assert written["optimizer"]["method"] == "lbfgs" and written["eps"] == 0.05 and written["delta"] == "auto"
    assert load_problem(tmp_path / "o" / "problem.json").to_spec() == written
