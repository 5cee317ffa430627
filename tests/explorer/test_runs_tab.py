"""The Runs tab without a browser: the app keeps its solves, compares two runs, plots a sweep."""
import time

import holoviews as hv
import numpy as np
import pytest

from explorer.model import SessionModel
from explorer.runner import SolveRunner
from explorer.runs_tab import RunsTab
from solver.study.execute import execute
from solver.study.store import RunStore
from solver.study.sweep import expand

hv.extension("bokeh")


def small_sweep() -> dict:
    base = {"source": {"generate": "line", "N": 4, "dim": 1, "center": [0.5], "scale": 1.0},
            "target": {"kind": "particles", "generate": "line", "N": 4, "dim": 1, "center": [2.25], "scale": 0.5},
            "eps": 0.01, "M": 5}
    return {"name": "tiny", "base": base, "axes": {"N": [4, 8, 16]}}


@pytest.fixture
def store(tmp_path):
    store = RunStore(tmp_path / "store")
    sweep = expand(small_sweep())
    store.add_sweep(sweep.name, sweep.spec, [(r.key, r.params) for r in sweep.runs])
    for run in sweep.runs:  # computed here, without dask: the tab only reads the store
        store.put(execute(run.problem.to_spec(), run.key))
    return store


def test_a_finished_solve_is_kept_and_listed(store):
    model, runner = SessionModel(), SolveRunner(store=store)
    tab = RunsTab(store, model, runner)
    assert len(tab.table.value) == 3
    tab.table.selection = [1]
    ticked = tab.selected_keys()
    runner.start(model.build_problem())
    runner.wait(60)
    deadline = time.monotonic() + 30
    while runner.stored == 0 and time.monotonic() < deadline:
        runner.flush()
        time.sleep(0.05)
    tab.poll()
    frame = tab.table.value
    assert len(frame) == 4 and frame["origin"].iloc[0] == "app" and frame["name"].iloc[0] == "default scene"
    assert frame["objective"].iloc[0] == pytest.approx(runner.summary["energies"]["objective"], rel=1e-12)
    assert tab.selected_keys() == ticked  # the new run, listed first, did not undo the user's tick
    fresh = RunsTab(store, model, runner)  # a tab opened after the run was kept: its first poll
    fresh.table.selection = [2]            # changes nothing (it used to reread the store and drop
    fresh.poll()                           # the tick made in that second)
    assert fresh.table.selection == [2] and fresh.message.object == ""
    runner.close()


def test_load_compare_and_plot_a_sweep(store):
    model, runner = SessionModel(), SolveRunner(store=store)
    tab = RunsTab(store, model, runner)
    tab.table.selection = [0, 1]
    tab._guard(tab.load_selected)
    assert "tick exactly one run to load (ticked: 2)" in tab.message.object
    tab.compare_selected()
    assert len(tab.compare_area.objects) == 3  # two trajectory plots and the table of numbers
    tab.table.selection = [2]
    tab.load_selected()
    key = tab.table.value["key"].iloc[2]
    record = store.get(key)
    assert np.allclose(model.source, np.asarray(record.problem["source"]["points"]))
    assert runner.state == "finished" and np.array_equal(runner.states, record.states)
    assert tab.sweep.value == "tiny" and tab.x.options == ["N"] and "error_terminal" in tab.y.options
    tab.y.value = "error_terminal"
    tab.plot_sweep()
    assert "3 finished runs" in tab.message.object and len(tab.sweep_plot.objects) == 1
    runner.close()
