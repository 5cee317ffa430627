"""Studies: sweep files, the run store, sweeps on a dask LocalCluster, reports (solver.study)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from solver import problem_from_dict
from solver.errors import ProblemError
from solver.study.execute import run_sweep, start_client
from solver.study.report import power_law_fit, report
from solver.study.store import RunRecord, RunStore
from solver.study.sweep import expand, load_sweep, run_key

ROOT = Path(__file__).resolve().parents[2]


def line_sweep(name: str, Ns: list[int], **base_changes) -> dict:
    """Fig. 9's set-up at small N (each run converges in a fraction of a second)."""
    base = {"dynamics": {"kind": "velocity"},
            "source": {"generate": "line", "N": 4, "dim": 1, "center": [0.5], "scale": 1.0},
            "target": {"kind": "particles", "generate": "line", "N": 4, "dim": 1, "center": [2.25], "scale": 0.5},
            "eps": 0.01, "M": 5, "init": "paper"}
    base.update(base_changes)
    return {"name": name, "base": base, "axes": {"N": Ns}}


@pytest.fixture(scope="module")
def client():
    c = start_client(workers=2)
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


def test_sweep_expands_grid_and_zip_and_validates_every_run():
    grid = expand({"name": "g", "base": line_sweep("x", [4])["base"], "axes": {"N": [3, 4], "eps": [0.1, 0.01, 0.001]}})
    assert len(grid.runs) == 6 and {r.params["eps"] for r in grid.runs} == {0.1, 0.01, 0.001}
    assert all(r.problem.N == r.params["N"] for r in grid.runs)
    zipped = expand({"name": "z", "mode": "zip", "base": line_sweep("x", [4])["base"],
                     "axes": {"N": [3, 4], "eps": [0.1, 0.01]}})
    assert [(r.params["N"], r.params["eps"]) for r in zipped.runs] == [(3, 0.1), (4, 0.01)]
    with pytest.raises(ProblemError, match=r"^eps: .*in the run with N = 4, eps = -1"):
        expand({"name": "bad", "base": line_sweep("x", [4])["base"], "axes": {"N": [4], "eps": [0.1, -1]}})
    with pytest.raises(ProblemError, match="^axes: in zip mode every axis needs the same length"):
        expand({"name": "z", "mode": "zip", "base": line_sweep("x", [4])["base"], "axes": {"N": [3, 4], "eps": [0.1]}})
    with pytest.raises(ProblemError, match="^source.generate: unknown generator 'spiral'"):
        expand({"name": "s", "base": line_sweep("x", [4])["base"], "axes": {"source": {"generate": "spiral", "N": [3]}}})


@pytest.mark.parametrize("field, value, message", [
    ("generate", ["line"], "^source.generate: unknown generator"),  # a list is no name (was a TypeError)
    ("N", 10**9, "^source.N: must be a whole number of points from 1 to 10,000,000"),  # not 16 GB in the client
    ("N", 10**30, "^source.N: must be a whole number"),  # was numpy's "Maximum allowed size exceeded"
    ("center", [float("nan")], r"^source.center: must be a list of 1 finite numbers"),
    ("scale", float("inf"), "^source.scale: must be a finite positive number"),
])
def test_generated_point_sets_refuse_what_they_cannot_make_by_one_line(field, value, message):
    """Found by mutating the example sweep files: each of these raised a traceback or allocated first."""
    base = line_sweep("x", [4])["base"]
    base["source"][field] = value
    with pytest.raises(ProblemError, match=message):
        expand({"name": "s", "base": base, "axes": {"eps": [0.1]}})


def test_sweep_axes_reach_methods_nested_keys_and_generator_specs():
    s = expand({"name": "m", "base": line_sweep("x", [4])["base"],
                "axes": {"method": ["robust", "lbfgs"], "optimizer.time_limit": [5]}})
    assert sorted(r.problem.optimizer.method for r in s.runs) == ["lbfgs", "robust"]
    assert all(r.problem.optimizer.time_limit == 5 for r in s.runs)
    base = {"source": {"points": [[0.0, 0.0]] * 3}, "target": {"kind": "gaussian", "mean": [2, 1], "cov": 0.09},
            "eps": 0.01, "M": 3}
    s = expand({"name": "gen", "base": base, "axes": {"source": {"generate": "uniform", "N": [10, 20], "seed": [1]}}})
    assert [r.problem.N for r in s.runs] == [10, 20] and [r.params["source.N"] for r in s.runs] == [10, 20]


def test_the_fig9_example_generates_the_presets_grids():
    """assets/sweeps/fig9.json builds exactly the published inputs of Fig. 9 (assets/fig9_N*.json)."""
    sweep = load_sweep(ROOT / "assets" / "sweeps" / "fig9.json")
    assert [r.params["N"] for r in sweep.runs] == [5, 10, 20, 40, 80, 100]
    for run in sweep.runs:
        preset = problem_from_dict(json.loads((ROOT / "assets" / f"fig9_N{run.problem.N:03d}.json").read_text()))
        np.testing.assert_allclose(run.problem.source, preset.source, atol=1e-15)
        np.testing.assert_allclose(run.problem.target.empirical[0], preset.target.empirical[0], atol=1e-15)
        assert run.problem.delta == preset.delta and run.problem.eps == preset.eps and run.problem.M == preset.M


def test_content_hash_is_stable_across_processes_key_order_and_number_spelling():
    spec = {"source": {"points": [[0.0], [1.0]]}, "target": {"kind": "particles", "points": [[2.0], [3.0]]},
            "eps": 0.01, "M": 5, "name": "a"}
    reordered = {"M": 5, "eps": 1e-2, "target": {"points": [[2], [3]], "kind": "particles"},
                 "source": {"points": [[0], [1]]}, "name": "another name (metadata is not hashed)"}
    key = run_key(problem_from_dict(spec))
    assert run_key(problem_from_dict(reordered)) == key
    code = ("import json, sys; from solver import problem_from_dict; from solver.study.sweep import run_key; "
            "print(run_key(problem_from_dict(json.loads(sys.argv[1]))))")
    other = subprocess.run([sys.executable, "-c", code, json.dumps(reordered)], capture_output=True, text=True,
                           cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED="123"), check=True).stdout.strip()
    assert other == key
    assert run_key(problem_from_dict(dict(spec, eps=0.02))) != key


def test_store_writes_are_atomic_and_the_first_finished_result_wins(tmp_path):
    store = RunStore(tmp_path / "s")
    problem = {"eps": 0.1}
    states = np.arange(24.0).reshape(2, 4, 3)
    assert store.put(RunRecord("k" * 64, "error", problem, {}, error="ValueError: boom"))
    assert store.missing(["k" * 64]) == ["k" * 64]  # an error is not a result
    assert store.put(RunRecord("k" * 64, "converged", problem, {"objective": 1.5}, states=states))
    assert not store.put(RunRecord("k" * 64, "converged", problem, {"objective": 9.9}, states=states + 1))
    got = store.get("kkkk")
    assert got.summary["objective"] == 1.5 and np.array_equal(got.states, states)
    assert len(store.files()) == 1 and store.files()[0].startswith("k" * 64)  # the loser's file is gone
    assert store.missing(["k" * 64, "x" * 64]) == ["x" * 64]
    with pytest.raises(ProblemError, match="^ID: no run with key 'zzzz'"):
        store.get("zzzz")


def test_a_12_run_sweep_on_two_workers_stores_every_run_and_a_rerun_computes_none(tmp_path, client):
    store = RunStore(tmp_path / "store")
    sweep = expand(line_sweep("twelve", list(range(3, 15))))
    outcome = run_sweep(sweep, store, client=client, progress=False)
    assert (outcome.total, outcome.computed, outcome.errors) == (12, 12, 0)
    rows = store.list("twelve")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"converged"}
    assert [r["params"]["N"] for r in rows] == list(range(3, 15))
    assert len(store.files()) == 12 and not [f for f in store.files() if f.startswith(".tmp")]
    run = store.get(rows[0]["key"])
    assert run.states.shape == (3, 5, 1) and run.version and run.host and run.origin == "sweep"
    again = run_sweep(sweep, store, client=client, progress=False)
    assert (again.skipped, again.computed) == (12, 0)


def test_a_failing_run_is_stored_with_its_one_line_error_and_the_rest_complete(tmp_path, client):
    """M = 10^9 time points pass validation but exceed the solver's memory budget inside the task."""
    store = RunStore(tmp_path / "store")
    spec = line_sweep("fails", [3])
    spec["axes"]["M"] = [5, 1_000_000_000, 6]
    outcome = run_sweep(expand(spec), store, client=client, progress=False)
    assert (outcome.computed, outcome.errors) == (3, 1)
    rows = {r["params"]["M"]: r for r in store.list("fails")}
    assert rows[5]["status"] == rows[6]["status"] == "converged"
    assert rows[1_000_000_000]["status"] == "error"
    error = rows[1_000_000_000]["error"]
    assert error.startswith("ProblemError: problem: N = 3 particles with M = 1000000000") and "\n" not in error
    assert store.missing([rows[1_000_000_000]["key"]])  # retried on the next run of the sweep


def test_a_worker_killed_mid_sweep_leaves_the_sweep_complete_without_duplicates(tmp_path):
    """Each run is the paper's gd for 600 steps (about a second); after the first result one worker
    process is killed (SIGKILL): its task is rerun elsewhere and every run is stored exactly once."""
    store = RunStore(tmp_path / "store")
    sweep = expand(line_sweep("killed", list(range(3, 15)), optimizer={"method": "gd", "max_iter": 600}))
    c = start_client(workers=2)
    killed = []

    def kill_one(record):
        if not killed:
            pids = c.run(os.getpid)
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        outcome = run_sweep(sweep, store, client=c, progress=False, on_record=kill_one)
    finally:
        cluster = c.cluster
        c.close()
        cluster.close()
    assert killed and outcome.errors == 0 and outcome.computed == 12
    rows = store.list("killed")
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12
    assert {r["status"] for r in rows} == {"max_iter"}
    assert len(store.files()) == 12 and not [f for f in store.files() if f.startswith(".tmp")]


def test_two_concurrent_sweeps_into_one_store_both_complete(tmp_path):
    """Two command-line sweeps (separate processes, one worker each) share runs N = 6..8."""
    store_dir = tmp_path / "store"
    files = []
    for name, Ns in (("first", list(range(3, 9))), ("second", list(range(6, 12)))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(line_sweep(name, Ns)))
        files.append(path)
    procs = [subprocess.Popen([sys.executable, "-m", "solver", "sweep", str(f), "--store", str(store_dir),
                               "--workers", "1", "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = RunStore(store_dir)
    assert len(store.list()) == 9 and len(store.files()) == 9
    assert {s["name"]: (s["members"], s["finished"]) for s in store.sweeps()} == {"first": (6, 6), "second": (6, 6)}


def test_power_law_fit_recovers_the_exponent_and_its_interval_covers_it():
    rng = np.random.default_rng(4)
    N = np.array([5, 10, 20, 40, 80, 160, 320])
    exact = power_law_fit(N, 3.0 * N ** -0.8)
    assert exact.slope == pytest.approx(-0.8, abs=1e-12) and exact.r2 == pytest.approx(1.0)
    # multiplicative noise of 5 %: the slope is recovered to its standard error (about 0.02 here)
    noisy = power_law_fit(N, 3.0 * N ** -0.8 * np.exp(0.05 * rng.normal(size=len(N))))
    assert noisy.ci95[0] < -0.8 < noisy.ci95[1] and noisy.ci95[1] - noisy.ci95[0] < 0.2


def test_report_draws_fits_and_tables_a_stored_sweep(tmp_path, client):
    store = RunStore(tmp_path / "store")
    spec = line_sweep("conv", [5, 10, 20, 40])
    spec["reference"] = {"label": "paper", "quantity": "error_terminal", "x": [5, 10, 20, 40],
                         "y": [0.005569, 0.002619, 0.00196, 0.001093]}
    run_sweep(expand(spec), store, client=client, progress=False)
    result = report(store, "conv", tmp_path / "out")
    entry = result["quantities"]["error_terminal"]
    assert entry["scale"] == "log-log" and entry["series"][0]["x"] == [5, 10, 20, 40]
    slope = entry["series"][0]["fit"]["slope"]
    assert -1.2 < slope < -0.5  # slightly slower than first order, as in the paper's Fig. 9
    assert entry["reference"]["fit"]["slope"] == pytest.approx(power_law_fit([5, 10, 20, 40], spec["reference"]["y"]).slope)
    assert (tmp_path / "out" / "report.png").stat().st_size > 10_000
    table = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert len(table) == 5 and "error_terminal" in table[0]


def test_runs_command_line(tmp_path, client):
    store_dir = tmp_path / "store"
    store = RunStore(store_dir)
    run_sweep(expand(line_sweep("cli", [3, 4])), store, client=client, progress=False)
    keys = [r["key"] for r in store.list("cli")]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "solver", *args, "--store", str(store_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    listed = cli("runs", "list")
    assert listed.returncode == 0 and all(k[:12] in listed.stdout for k in keys)
    shown = cli("runs", "show", keys[0][:8])
    assert shown.returncode == 0 and json.loads(shown.stdout)["key"] == keys[0]
    compared = cli("runs", "compare", keys[0][:8], keys[1][:8])
    assert compared.returncode == 0 and "source.points" in compared.stdout
    exported = cli("runs", "export", keys[0][:8], "--out", str(tmp_path / "exp"))
    assert exported.returncode == 0
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {"problem.json", "summary.json", "run.json", "trajectories.csv"}
    assert json.loads((tmp_path / "exp" / "run.json").read_text())["version"]
    missing = cli("runs", "show", "zzzz")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: ID: no run with key 'zzzz'")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_sweep_runs_on_an_existing_scheduler(tmp_path):
    """--scheduler: the command line sends its runs to a cluster started elsewhere (here a LocalCluster
    of this process, standing in for `dask scheduler` + `dask worker` on other machines)."""
    from dask.distributed import LocalCluster

    path = tmp_path / "remote.json"
    path.write_text(json.dumps(line_sweep("remote", [3, 4, 5])))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        done = subprocess.run([sys.executable, "-m", "solver", "sweep", str(path), "--store", str(tmp_path / "s"),
                               "--scheduler", cluster.scheduler_address, "--quiet"], cwd=ROOT, capture_output=True,
                              text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "sweep remote: 3 runs, 0 already stored, 3 computed, 0 errors" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "solver", "sweep", str(path), "--store", str(tmp_path / "t"),
                          "--scheduler", "tcp://127.0.0.1:9", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                         timeout=180)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --scheduler: cannot reach tcp://127.0.0.1:9")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_malformed_scheduler_address_is_one_line_naming_the_option():
    """dask raises ValueError("missing port number ...") for an address without a port: it went up as a
    traceback."""
    with pytest.raises(ProblemError, match="^--scheduler: cannot reach foo .*check the address"):
        start_client(scheduler="foo")


def test_a_sweep_killed_midway_resumes_with_only_the_missing_runs(tmp_path):
    """SIGKILL to the whole command-line sweep (client, scheduler and workers) after two runs are stored;
    running it again computes exactly the runs not stored, and nothing half-written is listed."""
    import time

    path = tmp_path / "crash.json"
    path.write_text(json.dumps(line_sweep("crash", list(range(3, 11)), optimizer={"method": "gd", "max_iter": 600})))
    args = [sys.executable, "-m", "solver", "sweep", str(path), "--store", str(tmp_path / "s"), "--workers", "1",
            "--quiet"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    stored = 0
    while stored < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if (tmp_path / "s" / "runs.sqlite").exists():
            stored = len(RunStore(tmp_path / "s").list())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = RunStore(tmp_path / "s")
    before = len(store.list())
    assert 2 <= before < 8
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"8 runs, {before} already stored, {8 - before} computed, 0 errors" in done.stdout
    assert len(store.list("crash")) == 8 and len(store.list()) == 8
    # every stored run has its file; a file written just before the kill has no row (tidy removes it later)
    named = {f[:64] for f in store.files() if not f.startswith(".tmp")}
    assert named == {r["key"] for r in store.list()}
