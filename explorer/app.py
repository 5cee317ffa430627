"""MFC Explorer web app: ``panel serve explorer/app.py``.

Every browser tab gets its own ``SessionModel`` (scene and parameters), ``SolveRunner`` (background
solve) and ``SceneEditor`` (main plot); closing the tab stops its solve. The layout is a sidebar of
controls and a main area of tabs (scene and energies, loss landscape, the 1-D acceleration views,
help, distributed control, the run store's runs).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # `panel serve explorer/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import holoviews as hv  # noqa: E402
import panel as pn  # noqa: E402
from panel.io.callbacks import PeriodicCallback  # noqa: E402

from explorer.animation import AnimationJob  # noqa: E402
from explorer.controls import Messages, build_sidebar, run_bar  # noqa: E402
from explorer.gc_tuning import freeze_imports  # noqa: E402
from explorer.help import help_panel  # noqa: E402
from explorer.model import SessionModel  # noqa: E402
from explorer.runner import SolveRunner  # noqa: E402
from explorer.runs_tab import RunsTab, default_store  # noqa: E402
from explorer.scene import SceneEditor  # noqa: E402
from explorer.views import (acceleration_tab, after_load, energy_plot, fig6_tab, landscape_plot,  # noqa: E402
                            lazy_tab, prime_text_panes, when_loaded)
from solver.allocator import keep_freed_memory  # noqa: E402
from solver.lazy import load_in_background, ot, torch, torch_dynamo  # noqa: E402
from solver.threads import use_threads  # noqa: E402

# One thread for the solver (torch and the compiled kernels; every solver thread adopts it,
# ``threads.adopt_threads``): on a small machine their worker threads would otherwise spin on every core
# and starve the server's event loop (the page would stop responding).
use_threads(1)
load_in_background(torch, ot, torch_dynamo)  # the solver's libraries load before the first Run
keep_freed_memory()  # Newton's large tensors reused, not page-faulted in anew each iteration
pn.extension("tabulator", "katex", sizing_mode="stretch_width")
hv.extension("bokeh", logo=False)
hv.renderer("bokeh").webgl = False  # canvas rendering: WebGL without a GPU costs the browser's CPU
freeze_imports()  # the first session's run: full garbage collections skip the imports' objects from now on


def quiet_periodic(callback: Callable[[], None], period_ms: int) -> PeriodicCallback:
    """``pn.state.add_periodic_callback`` without Panel's bookkeeping around each call (a busy-state
    event with a fresh uuid, two log lines): with eight tabs solving, the publishes' callbacks (ten a
    second per tab) spent as much of the event loop on it as on publishing (py-spy). Session-scoped:
    it ends with the session's document."""
    timer = PeriodicCallback(callback=callback, period=period_ms, background=True, log=False)
    timer.start()
    return timer


def create_app() -> pn.template.FastListTemplate:
    """Build one session's app (called once per browser tab)."""
    model = SessionModel()
    store = default_store()
    runner = SolveRunner(store=store)
    time_slider = pn.widgets.FloatSlider(name="time t (scrub the trajectories)", start=0.0, end=1.0,
                                         step=0.01, value=1.0, css_classes=["time-slider"], width=380, height=50,
                                         sizing_mode="fixed")
    scene = SceneEditor(model, runner, time_slider)
    messages = Messages(model)
    animation = AnimationJob()
    sidebar = build_sidebar(model, runner, scene, messages, animation)
    player = pn.widgets.Player(name="play", start=0, end=50, value=50, interval=80, loop_policy="once",
                               show_loop_controls=False, width=220, height=80, sizing_mode="fixed",
                               css_classes=["time-player"], visible_buttons=["play", "pause", "first"])
    player.param.watch(lambda e: setattr(time_slider, "value", e.new / 50), "value")
    scene_tab = pn.Row(
        pn.Column(scene.pane, pn.Row(time_slider, player), width=scene.pane.width,
                  height=scene.pane.height + 90, sizing_mode="fixed"),
        pn.Column(after_load(lambda: landscape_plot(runner), "landscape-holder", 330),
                  after_load(lambda: energy_plot(runner), "energy-holder", 330),
                  # in the first page, not after load: a Tabulator drawn in the browser just as a preset changes its
                  # rows can miss the change (seen 5 in 6 times: the table stayed empty)
                  pn.pane.Markdown("**Obstacles** (edit cells; select a row to edit or delete it)"), scene.table,
                  sizing_mode="stretch_width", min_width=300),
    )
    tabs = pn.Tabs(("Scene", scene_tab), ("Acceleration (1-D)", acceleration_tab(runner)), ("Help", help_panel()),
                   dynamic=True, css_classes=["main-tabs"], sizing_mode="stretch_width")
    lazy_tab(tabs, "Fig. 6 landscape", lambda: fig6_tab(model, runner), "fig6-holder")

    def distributed() -> pn.Column:
        # imported when first opened: its solvers' imports (SciPy's optimizers and more, ~0.25 s) would
        # otherwise delay the server's first tab
        from explorer.distributed_tab import distributed_tab
        return distributed_tab()

    lazy_tab(tabs, "Distributed control", distributed, "distributed-holder")

    periodic = []

    def runs_tab() -> pn.Column:
        tab = RunsTab(store, model, runner)
        periodic.append(quiet_periodic(tab.poll, 1000))
        return tab.view

    lazy_tab(tabs, "Runs", runs_tab, "runs-holder")
    periodic += [quiet_periodic(runner.flush, int(runner.push_interval * 1000)), quiet_periodic(animation.poll, 200)]

    def destroyed(_context: object) -> None:
        for callback in periodic:
            callback.stop()
        runner.close(timeout=2.0)
        animation.close(timeout=2.0)

    pn.state.on_session_destroyed(destroyed)
    return pn.template.FastListTemplate(
        title="MFC Explorer: the blob method for mean-field control", sidebar=sidebar,
        main=[pn.Column(messages.view, run_bar(model, runner, messages), sizing_mode="stretch_width"), tabs], sidebar_width=330, accent="#1f77b4",
        theme_toggle=False,
        # Panel's busy state is one for the whole server: each run of any session's periodic callbacks
        # (ten a second while solving) set every open tab's busy spinner twice. With 8 tabs solving that
        # was ~1,300 widget updates a second and half of the event loop's time (py-spy), and a widget
        # change waited up to 20-30 s; the status line and progress bar show the solve's activity
        busy_indicator=None)


if __name__.startswith("bokeh"):
    app = create_app()
    # the template adds its parts to the document one root at a time, and Bokeh re-collects every model
    # of the document after each: frozen, it collects them once (a new tab's page 0.4-0.9 s sooner)
    with pn.state.curdoc.models.freeze():
        app.servable()
    when_loaded(lambda: prime_text_panes([app.sidebar, app.main]))  # after the deferred parts: primes theirs too
