"""Fast unit tests (no browser) of the explorer's model, generators and runner."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import solver
from solver.generators import GENERATORS, generate
from explorer.model import SessionModel, list_presets
from explorer.runner import SolveRunner


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_generators_are_seeded_and_shaped(kind):
    a = generate(kind, 57, seed=3, center=(1.0, -1.0), scale=0.5)
    b = generate(kind, 57, seed=3, center=(1.0, -1.0), scale=0.5)
    assert a.shape == (57, 2) and np.array_equal(a, b)
    assert np.all(np.isfinite(a))
    assert generate(kind, 10, seed=0, dim=1).shape == (10, 1)


def test_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown kind"):
        generate("spiral", 10)
    with pytest.raises(ValueError, match="at least 1"):
        generate("grid", 0)


def test_default_model_is_valid_and_round_trips():
    m = SessionModel()
    assert m.message == ""
    spec = m.to_spec()
    m2 = SessionModel()
    m2.load_spec(spec)
    assert m2.to_spec() == spec


@pytest.mark.parametrize("name", list(list_presets()))
def test_every_preset_loads_and_round_trips(name):
    m = SessionModel()
    m.load_preset(name)
    assert m.message == "", m.message
    problem = m.build_problem()
    original = solver.problem_from_dict(json.loads(list_presets()[name].read_text()))
    assert problem.N == original.N and problem.M == original.M
    assert problem.delta == pytest.approx(original.delta) and problem.eps == original.eps
    assert problem.target.kind == original.target.kind
    assert problem.dynamics.kind == original.dynamics.kind


def test_invalid_values_give_one_line_messages():
    m = SessionModel()
    m.eps = 0
    assert m.message.startswith("eps: must be > 0")
    m.eps = 0.01
    m.M = 1
    assert m.message.startswith("M: must be >= 2")
    m.M = 20_000  # its V x V matrices (V = 2 (M - 1)) alone are 12.8 GB each: over the solve's budget
    assert m.message.startswith("problem: N = 49 particles with M = 20000 time points need about")
    assert "over the memory budget" in m.message
    m.M = 5
    m.set_points("target", np.zeros((0, 2)))
    assert m.message.startswith("target.points")
    m.generate_points("target", "ring", 20, 0, (1.0, 1.0), 1.0)
    assert m.message == ""
    m.set_target_kind("gaussian")
    assert m.message == "" and m.to_spec()["target"]["kind"] == "gaussian"
    m.target_params = "{not json"
    assert m.message.startswith("target parameters: not valid JSON")
    assert "\n" not in m.message


def test_csv_points_and_malformed_csv():
    m = SessionModel()
    m.load_points_csv("source", "x,y\n0,0\n1,0.5\n2,1\n")
    assert m.N == 3
    with pytest.raises(solver.ProblemError, match="source CSV"):
        m.load_points_csv("source", "x,y\n0,zero\n")
    with pytest.raises(solver.ProblemError, match="1 column but the scene needs 2"):
        m.load_points_csv("source", "1\n2\n")
    assert m.N == 3


def test_the_apps_terminal_export_loads_back_as_the_end_positions():
    """The scene's *terminal points* download (``terminal_csv``: particle, x0, x1) loaded as a new
    source gives the solve's end positions exactly (it used to read the particle index as x)."""
    from solver.io import terminal_csv

    m = SessionModel()
    problem = m.build_problem()
    states = np.asarray(solver.solve(problem).states)
    fresh = SessionModel()
    fresh.load_points_csv("source", terminal_csv(problem, states))
    np.testing.assert_array_equal(fresh.source, states[:, -1])


def test_obstacles_add_select_edit_remove():
    m = SessionModel()
    m.add_obstacle(0.5, 0.5, 0.2)
    m.add_obstacle(1.0, 1.0, 0.1)
    assert m.obstacle_at(0.55, 0.5) == 0 and m.obstacle_at(3, 3) is None
    m.update_obstacle(1, radius=0.3)
    assert m.to_spec()["obstacles"][1]["radius"] == 0.3
    m.remove_obstacle(0)
    assert len(m.obstacles) == 1 and m.message == ""


def test_whole_path_avoidance_is_on_for_new_scenes_and_as_presets_say():
    """On for a scene whose obstacles are placed in the app, off for the paper's Fig. 4 preset (its
    numbers are for eq. 59 at the time points), on for the playful presets that ask for it."""
    m = SessionModel()
    m.add_obstacle(0.5, 0.5, 0.2)
    assert m.build_problem().obstacles.segments
    m.load_preset("fig4_obstacles")
    assert not m.obstacle_segments and not m.build_problem().obstacles.segments
    m.load_preset("playful/gap_in_a_wall")
    assert m.obstacle_segments and m.to_spec()["obstacle_segments"] is True


def test_a_finished_solve_reports_obstacle_depths():
    m = SessionModel()
    m.load_preset("playful/gap_in_a_wall")
    runner = SolveRunner()
    runner.start(m.build_problem().with_changes(optimizer={"method": "robust", "max_iter": 3}))
    runner.wait(60)
    assert {"max_obstacle_depth", "max_obstacle_depth_segments"} <= set(runner.summary)
    assert runner.summary["max_obstacle_depth_segments"] >= runner.summary["max_obstacle_depth"]
    assert "deepest inside an obstacle" in runner.status


def test_url_query_restores_preset_and_parameters():
    m = SessionModel()
    m.load_preset("fig4_obstacles")
    m.eps, m.M = 0.05, 11
    m2 = SessionModel()
    assert m2.apply_query(m.query()) == []
    assert m2.to_spec() == m.to_spec()
    assert m2.apply_query({"eps": "abc"})[0].startswith("eps:")


def test_runner_streams_pauses_and_stops():
    m = SessionModel()
    m.load_preset("fig9_N005")
    runner = SolveRunner(landscape_interval=0.2)
    seen = []
    runner.trajectories.add_subscriber(lambda data: seen.append(data))
    # the paper's gd runs for long: the default method may finish this problem in 0.3 s, before 3 pushes
    runner.start(m.build_problem().with_changes(optimizer={"method": "gd", "lr": 3e-5, "max_iter": 10**6}))
    deadline = time.monotonic() + 20
    while runner.pushes < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        runner.flush()
    assert runner.pushes >= 3 and seen[-1].shape == (5, 5, 1)
    assert runner.iteration > 0 and "iteration" in runner.status
    runner.stop()
    assert runner.state == "finished" and runner.final_status in ("stopped", "converged", "max_iter")
    assert runner.summary["iteration"] == runner.iteration
    assert len(runner.energies.data) > 0
    runner.reset()
    assert runner.state == "idle" and runner.states is None


def test_runner_wait_publishes_the_final_result():
    runner = SolveRunner()
    problem = SessionModel().build_problem()
    runner.start(problem.with_changes(optimizer={"method": "robust", "max_iter": 1}))
    runner.wait(30)
    assert runner.state == "finished" and runner.final_status == "max_iter"
    assert runner.states.shape == (problem.N, problem.M, 2)


@pytest.mark.parametrize("ending", ["wait", "stop"])
def test_wait_and_stop_publish_even_right_after_a_publish(ending):
    """``flush`` skips calls that come too soon after the last publish (the event loop's share); ``wait``
    and ``stop``, whose callers read the result at once, publish whatever the time. (A fuzz of runner
    actions caught a stopped solve still reading "running": its publish had been skipped.)"""
    runner = SolveRunner()
    problem = SessionModel().build_problem()
    runner.start(problem.with_changes(optimizer={"method": "robust", "max_iter": 1}))
    runner._thread.join(30)
    runner._next_flush = time.perf_counter() + 3600  # as if a publish had just taken very long
    getattr(runner, ending)()
    assert runner.state == "finished" and runner.final_status == "max_iter"


def test_the_final_w2_beyond_emds_size_is_the_exact_one_of_the_summary_file():
    """Beyond emd's size (N K > EXACT_PAIRS) the live W2^2 is off, but the finished status and summary
    give the exact value that summary.json gets (the repaired permutation): POT's emd on the final
    points, to rounding of sums of N O(1) terms."""
    from solver.assignment import EXACT_PAIRS
    from solver.diagnostics import w2sq

    N = int(np.sqrt(EXACT_PAIRS)) + 100
    rng = np.random.default_rng(3)
    problem = solver.problem_from_dict({
        "source": {"points": rng.uniform(0, 1, (N, 2)).tolist()},
        "target": {"kind": "particles", "points": rng.normal([2, 1], 0.3, (N, 2)).tolist()},
        "M": 2, "optimizer": {"max_iter": 2}})
    runner = SolveRunner()
    runner.start(problem)
    runner.wait(60)
    exact = w2sq(runner.states[:, -1], problem.target.points)
    assert runner.summary["w2sq_terminal"] == pytest.approx(exact, rel=1e-12)
    assert f"W2² to target = {exact:.4g}" in runner.status


def test_scene_writes_trajectories_and_time_into_its_bokeh_sources():
    """The live layers bypass HoloViews: a runner update lands in the rendered Bokeh data sources,
    the time slider moves the particles along the trajectories, a new render starts from the current
    data, a reset empties both."""
    import holoviews as hv
    import panel as pn
    from bokeh.document import Document

    from explorer.scene import SceneEditor

    hv.extension("bokeh", logo=False)

    model = SessionModel()
    model.load_preset("fig1_pot_comparison")
    runner = SolveRunner()
    slider = pn.widgets.FloatSlider(start=0.0, end=1.0, value=1.0)
    scene = SceneEditor(model, runner, slider)
    scene.pane.get_root(Document())
    states = solver.init.initial_positions(model.build_problem())  # (N, M, 2), straight lines
    N, M, _ = states.shape
    runner.trajectories.send(states)
    paths, particles = scene.live.sources["trajectories"], scene.live.sources["particles"]
    xs = paths.data["xs"][0]
    assert len(xs) == N * (M + 1) and np.isnan(xs[M::M + 1]).all()
    assert np.allclose(xs[:M], states[0, :, 0])
    columns = list(particles.data)
    assert np.allclose(particles.data[columns[0]], states[:, -1, 0])
    slider.value = 0.5  # halfway along each trajectory (M time points, linear interpolation)
    s = 0.5 * (M - 1)
    j = int(s)
    expected = states[:, j] + (s - j) * (states[:, min(j + 1, M - 1)] - states[:, j])
    assert np.allclose(particles.data[columns[1]], expected[:, 1])
    scene.pane.get_root(Document())  # shown again (e.g. back on its tab): starts from the current data
    assert scene.live.sources["trajectories"] is not paths
    assert np.array_equal(scene.live.sources["trajectories"].data["xs"][0], xs, equal_nan=True)
    assert np.allclose(scene.live.sources["particles"].data[columns[1]], expected[:, 1])
    paths, particles = scene.live.sources["trajectories"], scene.live.sources["particles"]
    runner.reset()
    assert len(paths.data["xs"][0]) == 0 and len(particles.data[columns[0]]) == 0


def test_status_shows_w2_to_a_particle_target_during_and_after_the_solve():
    """W2^2 from the terminal points to the target is shown while solving (refreshed every second)
    and, at the end, equals POT's exact value for the final trajectories."""
    from solver.diagnostics import w2sq

    m = SessionModel()
    m.load_preset("fig1_pot_comparison")
    problem = m.build_problem().with_changes(optimizer={"method": "gd", "lr": 1e-4, "max_iter": 10**6})
    runner = SolveRunner(landscape_interval=100.0)
    runner.start(problem)
    deadline = time.monotonic() + 20
    while "W2² to target" not in runner.status and time.monotonic() < deadline:
        time.sleep(0.1)
        runner.flush()
    assert "W2² to target" in runner.status and runner.state == "running"
    runner.stop()
    exact = w2sq(runner.states[:, -1], problem.target.points)
    assert runner.summary["w2sq_terminal"] == pytest.approx(exact, rel=1e-12)  # same emd, same points
    assert f"W2² to target = {exact:.4g}" in runner.status


def test_large_trajectories_are_sent_at_a_bounded_rate():
    """N = 20,000 (M = 10, 2-D) trajectories are 400,000 numbers: at most one update a second goes to
    the plots (TRAJECTORY_NUMBERS_PER_SECOND); the newest waits in the mailbox and is sent later."""
    from explorer.runner import TRAJECTORY_NUMBERS_PER_SECOND

    runner = SolveRunner()
    seen = []
    runner.trajectories.add_subscriber(lambda data: seen.append(data))

    def report(value: float) -> None:
        states = np.full((20_000, 10, 2), value)
        runner._fresh = solver.Snapshot(1, 1, {"objective": 1.0}, 0.1, 0.0, 0.0, "", states)

    interval = 20_000 * 10 * 2 / TRAJECTORY_NUMBERS_PER_SECOND
    assert interval == pytest.approx(1.0)
    report(1.0)
    runner.flush()
    report(2.0)
    runner.flush()
    assert [d[0, 0, 0] for d in seen] == [1.0]  # the second came too soon
    time.sleep(interval + 0.05)
    runner.flush()
    assert [d[0, 0, 0] for d in seen] == [1.0, 2.0] and runner.pushes == 2


def test_distributed_worker_applies_only_the_newest_request():
    """Two requests in a row: the first is cancelled, every stage applied belongs to the second, in
    the order of ``STAGES``; closing the tab's worker ends its thread."""
    import threading

    from explorer.distributed_tab import DistributedCase, DistributedWorker
    from solver.distributed.explore import STAGES

    applied, done = [], threading.Event()

    def apply(generation, stage):
        applied.append((generation, stage.name))
        if stage.name == "projection":
            done.set()

    worker = DistributedWorker(apply, lambda fn: fn())
    slow = DistributedCase(n=300, graph="regular").case_dict()
    fast = DistributedCase(n=12, graph="star").case_dict()
    worker.submit(slow)
    newest = worker.submit(fast)
    assert done.wait(120)
    assert [name for _, name in applied] == list(STAGES)
    assert {generation for generation, _ in applied} == {newest}
    worker.close()
    assert not worker.alive


def test_landscape_slices_are_sized_to_their_share_of_the_refresh_period():
    """A slice that took twice its share of ``LANDSCAPE_PERIOD`` halves the next one's evaluation
    budget, a quick one doubles it up to the cap: the thread converges to a slice per period."""
    from explorer.runner import LANDSCAPE_CPU_SHARE, LANDSCAPE_PERIOD, next_budget

    share = LANDSCAPE_CPU_SHARE * LANDSCAPE_PERIOD
    assert next_budget(0.4, 2 * share, 1.0) == pytest.approx(0.2)
    assert next_budget(0.1, share / 2, 1.0) == pytest.approx(0.2)
    assert next_budget(0.4, share / 10, 0.4) == 0.4  # never above the cap
