"""The "Runs" tab: the run store's runs (sweeps, the command line and this app's own solves).

A sortable table of every stored run; *Load into scene* puts a run's problem and trajectories back into
the scene (as a loaded session); *Compare* shows two runs side by side (trajectories and summary
numbers); *Plot sweep* draws a sweep's quantity against one of its axes with fitted power laws, the
same numbers as ``python -m solver runs report`` (``solver.study.report.study``). The table refreshes
when this session keeps a new run and on *Refresh*.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn

import solver
from solver.study.report import quantities_of, study
from solver.study.store import RunStore
from solver.study.sweep import sweep_axes

from . import plots
from .model import SessionModel
from .runner import SolveRunner

#: Columns of the runs table, in order (``RunStore.list`` names, ``id`` the key's first characters).
TABLE_COLUMNS = ["id", "name", "status", "objective", "seconds", "iterations", "N", "M", "eps", "method", "origin",
                 "created"]
ID_CHARS = 12


def default_store() -> RunStore:
    """The app's run store: ``$MFC_STORE``, else ``~/.mfc-explorer/runs``."""
    return RunStore(os.environ.get("MFC_STORE") or Path.home() / ".mfc-explorer" / "runs")


def runs_frame(store: RunStore) -> pd.DataFrame:
    """The store's runs as the table shows them (newest first), with the full key kept in ``key``."""
    rows = store.list()
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["key", *TABLE_COLUMNS[1:]])
    frame["id"] = frame["key"].str[:ID_CHARS]
    frame["created"] = [datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") for t in frame["created"]]
    return frame[TABLE_COLUMNS + ["key"]]


class RunsTab:
    """The tab's widgets and actions for one session."""

    def __init__(self, store: RunStore, model: SessionModel, runner: SolveRunner) -> None:
        self.store, self.model, self.runner = store, model, runner
        self._seen = runner.stored  # the table below already holds every run stored so far
        self.table = pn.widgets.Tabulator(runs_frame(store), selectable="checkbox", show_index=False, disabled=True,
                                          hidden_columns=["key"], pagination="local", page_size=12, height=400,
                                          css_classes=["runs-table"], sizing_mode="stretch_width")
        self.message = pn.pane.Markdown("", css_classes=["runs-message"], sizing_mode="stretch_width")
        self.compare_area = pn.Row(css_classes=["runs-compare-area"], sizing_mode="stretch_width")
        refresh = pn.widgets.Button(label="Refresh", css_classes=["runs-refresh"], width=110)
        load = pn.widgets.Button(label="Load into scene", button_type="primary", css_classes=["runs-load"], width=150)
        compare = pn.widgets.Button(label="Compare two", css_classes=["runs-compare"], width=130)
        refresh.on_click(lambda _e: self.refresh())
        load.on_click(lambda _e: self._guard(self.load_selected))
        compare.on_click(lambda _e: self._guard(self.compare_selected))
        sweeps = [s["name"] for s in store.sweeps()]
        self.sweep = pn.widgets.Select(label="sweep", options=sweeps, css_classes=["runs-sweep"], width=200)
        self.x = pn.widgets.Select(label="against (axis)", options=[], css_classes=["runs-x"], width=160)
        self.y = pn.widgets.Select(label="quantity", options=[], css_classes=["runs-y"], width=180)
        plot = pn.widgets.Button(label="Plot sweep", css_classes=["runs-plot"], width=120, margin=(22, 5, 5, 5))
        plot.on_click(lambda _e: self._guard(self.plot_sweep))
        self.sweep.param.watch(lambda _e: self._guard(self._sweep_chosen), "value")
        self.sweep_plot = pn.Column(css_classes=["runs-sweep-plot"], sizing_mode="stretch_width")
        self._sweep_chosen()
        self.view = pn.Column(
            pn.pane.Markdown(f"**Run store** `{store.folder}`: runs of sweeps (`python -m solver sweep`), of "
                             "`solve --store` and every solve of this app once it finishes or is stopped. "
                             "Tick runs, then load one into the scene or compare two."),
            pn.Row(refresh, load, compare), self.message, self.table, self.compare_area,
            pn.pane.Markdown("**Plot a sweep**"), pn.Row(self.sweep, self.x, self.y, plot), self.sweep_plot,
            sizing_mode="stretch_width", css_classes=["runs-tab"])

    def _guard(self, action: Any) -> None:
        """Run an action; a bad run or store shows as a message, never crashes the session."""
        try:
            action()
        except solver.ProblemError as err:
            self.message.object = f"**{err}**"
        except Exception as err:  # an unreadable store file, a corrupt run: say so, keep the app alive
            self.message.object = f"**{type(err).__name__}: {err}**"

    # -- the table -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reread the store; ticked runs stay ticked (a run kept while one ticks must not undo it)."""
        ticked = set(self.selected_keys())
        frame = runs_frame(self.store)
        self.table.value = frame
        self.table.selection = [i for i, key in enumerate(frame["key"]) if key in ticked]
        self.sweep.options = [s["name"] for s in self.store.sweeps()]
        note = self.runner.store_error
        self.message.object = f"**{note}**" if note else f"{len(self.table.value)} runs in the store."

    def poll(self) -> None:
        """Refresh when this session kept a new run (called from a periodic callback)."""
        if self.runner.stored != self._seen:
            self._seen = self.runner.stored
            self.refresh()

    def selected_keys(self) -> list[str]:
        frame = self.table.value
        return [frame["key"].iloc[i] for i in self.table.selection if i < len(frame)]

    def load_selected(self) -> None:
        keys = self.selected_keys()
        if len(keys) != 1:
            raise solver.ProblemError("runs", f"tick exactly one run to load (ticked: {len(keys)})")
        if self.runner.running:
            raise solver.ProblemError("runs", "a solve is running; stop it before loading a run")
        record = self.store.get(keys[0])
        problem = solver.problem_from_dict(record.problem)
        summary = dict(record.summary, status=record.status, iteration=record.summary.get("iterations", 0))
        self.runner.load_result(problem, record.states, summary)
        self.model.preset = ""
        self.model.load_spec(record.problem)
        self.message.object = f"Loaded run {record.key[:ID_CHARS]} ({record.name}, {record.status}) into the scene."

    def compare_selected(self) -> None:
        keys = self.selected_keys()
        if len(keys) != 2:
            raise solver.ProblemError("runs", f"tick exactly two runs to compare (ticked: {len(keys)})")
        records = [self.store.get(k) for k in keys]
        numbers = [k for k in dict.fromkeys([*records[0].summary, *records[1].summary])
                   if isinstance(records[0].summary.get(k, records[1].summary.get(k)), (int, float, str))]
        table = pd.DataFrame({"quantity": numbers, **{r.key[:ID_CHARS]: [r.summary.get(k) for k in numbers]
                                                       for r in records}}).astype(str)
        self.compare_area.objects = [pn.pane.HoloViews(trajectories_plot(r), css_classes=["runs-compare-plot"])
                                     for r in records] + [
            pn.widgets.Tabulator(table, show_index=False, disabled=True, height=330, width=360,
                                 css_classes=["runs-compare-table"])]
        self.message.object = f"Comparing {keys[0][:ID_CHARS]} and {keys[1][:ID_CHARS]}."

    # -- sweeps ------------------------------------------------------------------------------------
    def _sweep_chosen(self) -> None:
        if not self.sweep.value:
            self.x.options, self.y.options = [], []
            return
        spec = self.store.sweep_spec(self.sweep.value)
        axes = list(sweep_axes(spec))
        self.x.options = axes
        self.y.options = quantities_of(self.store, self.sweep.value)
        reference = spec.get("reference") or {}
        self.y.value = reference.get("quantity") if reference.get("quantity") in self.y.options else (
            "objective" if "objective" in self.y.options else (self.y.options or [None])[0])

    def plot_sweep(self) -> None:
        if not self.sweep.value:
            raise solver.ProblemError("sweep", "the store has no sweep yet; run one with python -m solver sweep")
        result = study(self.store, self.sweep.value, self.x.value or None, [self.y.value] if self.y.value else None)
        self.sweep_plot.objects = [pn.pane.HoloViews(sweep_plot(result), sizing_mode="stretch_width")]
        self.message.object = f"Sweep {self.sweep.value}: {result['runs']} finished runs."


def trajectories_plot(record: Any) -> hv.Overlay:
    """A stored run's trajectories and terminal points, titled with its name and objective."""
    problem = solver.problem_from_dict(record.problem)
    dim = problem.dynamics.dim
    kx, ky = plots.scene_axes(dim)
    lines = plots.trajectory_xy(record.states, dim) if record.states is not None else []
    end = plots.as_scene_xy(record.states[:, -1], dim, 1.0) if record.states is not None else np.zeros((0, 2))
    objective = record.summary.get("objective")
    title = f"{record.name[:40]} · {record.status}" + (f" · objective {objective:.6g}" if objective is not None else "")
    return (hv.Path([line for line in lines], kdims=[kx, ky]).opts(color=plots.TRAJ_COLOR, alpha=0.5, line_width=1)
            * hv.Points(end, kdims=[kx, ky], label="terminal points").opts(color=plots.TERMINAL_COLOR, size=4)
            ).opts(title=title, width=360, height=330, fontsize={"title": 9}, show_legend=False)


def sweep_plot(result: dict[str, Any]) -> hv.Overlay:
    """The sweep's series (and reference) of the first quantity, with fitted slopes in the legend."""
    q, entry = next(iter(result["quantities"].items()))
    curves = []
    for item in entry["series"] + ([entry["reference"]] if "reference" in entry else []):
        fit = item.get("fit")
        label = item["label"] + (f" (slope {fit['slope']:.2f})" if fit else "")
        curves.append(hv.Curve((item["x"], item["y"]), result["x"], q, label=label).opts(line_width=2)
                      * hv.Scatter((item["x"], item["y"]), result["x"], q, label=label).opts(size=6))
    log = entry["scale"] == "log-log"
    return hv.Overlay(curves).opts(title=f"{q} against {result['x']} ({result['sweep']})", logx=log, logy=log,
                                   height=380, responsive=True, legend_position="top_right", show_grid=True)
