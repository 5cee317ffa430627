"""Sidebar controls, the run bar and the message area of one session.

Widgets are generated from the ``SessionModel`` parameters (so their docs become tooltips) and
every action that can fail on user input (CSV upload, session import, Run) reports a one-line
message in the message area instead of raising.
"""
from __future__ import annotations

import html
import io
from typing import Any, Callable
from urllib.parse import urlencode

import panel as pn
import param

import solver
from solver.io import session_from_json, session_to_json, terminal_csv, trajectories_csv

from .animation import FORMATS as ANIMATION_FORMATS, AnimationJob
from .exports import scene_png
from solver.generators import GENERATORS
from .model import SessionModel
from .runner import SolveRunner
from .scene import SceneEditor
from .views import after_load


class Messages:
    """The message area: a validation error (the model's), an action error, and a note."""

    def __init__(self, model: SessionModel) -> None:
        self.validation = pn.pane.Alert("", alert_type="danger", visible=False,
                                        css_classes=["message", "validation-message"])
        self.action = pn.pane.Alert("", alert_type="danger", visible=False,
                                    css_classes=["message", "action-message"])
        self.info = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["note"])
        model.param.watch(lambda e: self._show(self.validation, e.new and f"Invalid problem: {e.new}"),
                          "message")
        self._show(self.validation, model.message and f"Invalid problem: {model.message}")
        self.view = pn.Column(self.validation, self.action, self.info)

    @staticmethod
    def _show(alert: pn.pane.Alert, text: str) -> None:
        alert.object = text or ""
        alert.visible = bool(text)

    def error(self, text: str) -> None:
        self._show(self.action, text)

    def note(self, text: str) -> None:
        self._show(self.info, text)

    def clear(self) -> None:
        self._show(self.action, "")
        self._show(self.info, "")


class SidebarLock:
    """Keeps a person's edits from racing a whole-scene load (a preset, a session file).

    Such a load sets every parameter at once on the server, and its changes reach the browser as a
    burst of messages, the scene plot's re-render among them (~1 s for a preset): the scene summary
    could show the new M while the M box still held the old one, and a value typed then was replaced
    by the load's when it landed, while the server kept the typed one (the box and the solve then
    disagreed). So the choice itself makes the sidebar ``inert`` in the browser, at once, before a key
    can reach it; the server applies the load under one ``hold`` of the document (one batch of
    changes, its models collected once: a preset 0.9 -> 0.6 s) and then bumps ``token``, whose
    change, sent after the batch, lifts the lock. A lock that no reply lifts (a lost connection)
    lifts itself after ``FALLBACK_S``."""

    FALLBACK_S = 20
    LOCK = ("const bar = document.getElementById('sidebar'); if (bar) { bar.inert = true; "
            "clearTimeout(window.mfcSidebarLock); "
            f"window.mfcSidebarLock = setTimeout(() => {{ bar.inert = false; }}, {FALLBACK_S * 1000}); }}")
    UNLOCK = ("const bar = document.getElementById('sidebar'); if (bar) { bar.inert = false; } "
              "clearTimeout(window.mfcSidebarLock);")

    def __init__(self) -> None:
        self.token = pn.widgets.IntInput(value=0, visible=False, css_classes=["sidebar-unlock"])
        self.token.jscallback(value=self.UNLOCK)
        self._depth = 0  # a load inside a load (a session file resets the preset) unlocks once, at the end

    def locks(self, widget: pn.widgets.Widget) -> None:
        """A change of ``widget.value`` in the browser locks the sidebar until ``applying`` ends."""
        widget.jscallback(value=self.LOCK)

    def applying(self, action: Callable[[param.parameterized.Event], None]
                 ) -> Callable[[param.parameterized.Event], None]:
        """``action`` run as one batch of document changes, then the unlock (even if it failed)."""
        def wrapped(event: param.parameterized.Event) -> None:
            self._depth += 1
            try:
                with pn.io.hold(freeze=True):  # frozen: the document's models are collected once, at the end
                    action(event)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.token.value += 1
        return wrapped


#: Largest file a browser may upload (points CSV, session JSON): 20,000 points or a session of a few
#: thousand particles' trajectories fit well under it.
MAX_UPLOAD_BYTES = 5 * 2**20


def uploaded_text(data: bytes, what: str) -> str:
    """An uploaded file's text, or a one-line ProblemError when it is too large or not UTF-8 text."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise solver.ProblemError(what, f"the file has {len(data) / 2**20:.1f} MB, over the upload limit of "
                                        f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB; load a smaller file (or solve it "
                                        "with python -m solver solve)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise solver.ProblemError(what, "is not a text file (UTF-8); give a CSV or JSON file") from None


def _guard(messages: Messages, action: Callable[..., Any]) -> Callable[..., None]:
    """Run ``action``; any error becomes a visible one-line message instead of a traceback: the
    session and the server go on, and the scene is left as it was (actions validate before they
    change anything)."""
    def wrapped(*args: Any) -> None:
        try:
            action(*args)
        except (solver.ProblemError, ValueError) as err:
            messages.error(str(err).splitlines()[0])
        except Exception as err:  # an input no check foresaw: report it, keep the session alive
            messages.error(f"Could not do that: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        else:
            messages.error("")
    return wrapped


def _w(widget_cls: type, parameter: param.Parameter, css: str, **kw: Any) -> pn.widgets.Widget:
    """A widget for a model parameter, with the parameter's doc as its tooltip (where supported)."""
    if "description" in widget_cls.param:
        kw["description"] = parameter.doc
    if issubclass(widget_cls, (pn.widgets.FloatInput, pn.widgets.IntInput)) and parameter.bounds is None:
        # no clamping in the browser: out-of-range values reach the model, whose validation shows
        # the solver's one-line message (e.g. "eps: must be > 0 (got 0)")
        kw.update(start=None, end=None)
    return widget_cls.from_param(parameter, css_classes=[css], **kw)


def parameter_widgets(model: SessionModel) -> pn.Column:
    """The solver parameters (eps, delta, M, p, optimizer, ...), with bounds and help tooltips."""
    mp = model.param
    delta = _w(pn.widgets.FloatInput, mp.delta, "delta-input", name="δ (blob width)", step=0.005)
    lr = _w(pn.widgets.FloatInput, mp.lr, "lr-input", name="learning rate", step=0.01)
    weight = _w(pn.widgets.FloatInput, mp.obstacle_weight, "weight-input", name="obstacle weight c")
    delta_auto = _w(pn.widgets.Checkbox, mp.delta_auto, "delta-auto", name="δ = N^(-0.99/d) (auto)")
    lr_auto = _w(pn.widgets.Checkbox, mp.lr_auto, "lr-auto", name="learning rate from the paper (auto)")
    weight_auto = _w(pn.widgets.Checkbox, mp.obstacle_weight_auto, "weight-auto", name="c = 1/(h ε) (auto)")
    for box, field in ((delta_auto, delta), (lr_auto, lr), (weight_auto, weight)):
        field.disabled = box.value
        box.link(field, value="disabled")
    resolved = pn.pane.Markdown(pn.bind(lambda *_: f"δ in use: **{model.resolved_delta():.4g}**",
                                        mp.delta_auto, mp.delta, mp.source, mp.dynamics),
                                css_classes=["delta-resolved"], margin=(0, 10))
    return pn.Column(
        _w(pn.widgets.Select, mp.dynamics, "dynamics-select", name="dynamics"),
        pn.Row(_w(pn.widgets.FloatInput, mp.eps, "eps-input", name="ε (terminal penalty 1/ε)", step=0.001),
               _w(pn.widgets.IntInput, mp.M, "m-input", name="M (time points)")),
        delta_auto, pn.Row(delta, resolved),
        pn.Row(_w(pn.widgets.FloatInput, mp.p, "p-input", name="p (cost |u|^p)", step=0.1),
               _w(pn.widgets.Select, mp.init, "init-select", name="initialization")),
        _w(pn.widgets.Select, mp.method, "method-select", name="optimizer"),
        lr_auto, lr,
        pn.Row(_w(pn.widgets.IntInput, mp.max_iter, "maxiter-input", name="max iterations"),
               _w(pn.widgets.FloatInput, mp.time_limit, "time-input", name="time limit (s)")),
        weight_auto, weight,
        _w(pn.widgets.Checkbox, mp.obstacle_segments, "segments-check", name="keep whole paths out of obstacles"),
        _w(pn.widgets.IntInput, mp.seed, "seed-input", name="seed"),
    )


def scene_widgets(model: SessionModel, scene: SceneEditor, messages: Messages) -> pn.Column:
    """Draw mode, undo / redo, obstacles and the brush; below them (built once the page has loaded)
    ``points_widgets``."""
    # one button per row: side by side, five modes in the sidebar's width cut their labels short
    mode = pn.widgets.RadioButtonGroup.from_param(scene.param.mode, css_classes=["mode-select"],
                                                  orientation="vertical", button_type="primary",
                                                  button_style="outline")
    radius = pn.widgets.FloatInput.from_param(scene.param.obstacle_radius, name="obstacle radius",
                                              step=0.05, css_classes=["radius-input"],
                                              description=scene.param.obstacle_radius.doc)
    shape = pn.widgets.Select.from_param(scene.param.obstacle_kind, name="obstacle shape",
                                         css_classes=["obstacle-kind"], description=scene.param.obstacle_kind.doc)
    delete = pn.widgets.Button(name="Delete selected obstacle", css_classes=["delete-obstacle"])
    delete.on_click(lambda _e: scene.delete_selected())
    paint_which = pn.widgets.RadioButtonGroup.from_param(scene.param.paint_which, css_classes=["paint-which"],
                                                         name="paint")
    spacing = pn.widgets.FloatInput.from_param(scene.param.brush_spacing, name="brush spacing", step=0.01,
                                               css_classes=["brush-spacing"], description=scene.param.brush_spacing.doc)
    width = pn.widgets.FloatInput.from_param(scene.param.brush_width, name="brush width", step=0.05,
                                             css_classes=["brush-width"], description=scene.param.brush_width.doc)
    scene.param.watch(lambda e: messages.error(e.new), "problem")
    delete_points = pn.widgets.Button(name="Delete selected points", css_classes=["delete-points"])

    def count_selected(event: Any) -> None:
        """The button says how many points the box-select tool has selected (the selection reaches the
        server a moment after the drag ends)."""
        delete_points.name = f"Delete {event.new} selected points" if event.new else "Delete selected points"

    scene.param.watch(count_selected, "selected_points")

    def remove_points(_e: Any) -> None:
        count = scene.delete_selected_points()
        messages.note(f"Deleted {count} selected points." if count else
                      "No points selected: choose the box-select tool in the plot's toolbar and drag a box.")

    delete_points.on_click(remove_points)
    history = scene.history
    undo = pn.widgets.Button(name="↶ Undo", css_classes=["undo-button"], disabled=not history.can_undo)
    redo = pn.widgets.Button(name="↷ Redo", css_classes=["redo-button"], disabled=not history.can_redo)
    undo.on_click(lambda _e: history.undo())
    redo.on_click(lambda _e: history.redo())
    history.param.watch(lambda e: setattr(undo, "disabled", not e.new), "can_undo")
    history.param.watch(lambda e: setattr(redo, "disabled", not e.new), "can_redo")
    return pn.Column(
        pn.pane.Markdown("**Click on the scene to**"), mode, scene.hint, pn.Row(undo, redo),
        delete_points, pn.Row(shape, radius), delete,
        pn.Card(paint_which, pn.Row(spacing, width), title="Brush (paint mode)", collapsed=False,
                css_classes=["brush-card"]),
        after_load(lambda: points_widgets(model, messages), "points-holder", 400),
    )


def points_widgets(model: SessionModel, messages: Messages) -> pn.Column:
    """Generated point clouds, CSV upload, the target kind and its parameters, clearing points."""
    which = pn.widgets.RadioButtonGroup(options=["source", "target"], value="source", name="points of",
                                        css_classes=["generate-which"])
    kind = pn.widgets.Select(name="shape", options=list(GENERATORS), value="grid", css_classes=["generate-kind"])
    count = pn.widgets.IntInput(name="number of points", value=100, start=1, end=5000,
                                css_classes=["generate-n"])
    seed = pn.widgets.IntInput(name="seed", value=0, start=0, css_classes=["generate-seed"])
    cx = pn.widgets.FloatInput(name="centre x", value=0.0, step=0.1)
    cy = pn.widgets.FloatInput(name="centre y", value=0.0, step=0.1)
    scale = pn.widgets.FloatInput(name="size", value=1.0, start=0.01, step=0.1)
    generate = pn.widgets.Button(name="Generate points", button_type="primary", css_classes=["generate-button"])
    generate.on_click(_guard(messages, lambda _e: model.generate_points(
        which.value, kind.value, count.value, seed.value, (cx.value, cy.value), scale.value)))

    def upload(which_points: str) -> Callable[[param.parameterized.Event], None]:
        return _guard(messages, lambda e: e.new is not None and model.load_points_csv(
            which_points, uploaded_text(e.new, f"{which_points} CSV")))

    source_csv = pn.widgets.FileInput(accept=".csv,.txt", css_classes=["source-csv"], name="source CSV")
    target_csv = pn.widgets.FileInput(accept=".csv,.txt", css_classes=["target-csv"], name="target CSV")
    source_csv.param.watch(upload("source"), "value")
    target_csv.param.watch(upload("target"), "value")

    target_kind = pn.widgets.Select(name="target kind", options=model.param.target_kind.objects,
                                    value=model.target_kind, css_classes=["target-kind"],
                                    description=model.param.target_kind.doc)
    target_kind.param.watch(lambda e: model.set_target_kind(e.new), "value")
    model.param.watch(lambda e: setattr(target_kind, "value", e.new), "target_kind")
    target_params = pn.widgets.TextAreaInput.from_param(
        model.param.target_params, name="target parameters (JSON)", height=90,
        css_classes=["target-params"], visible=not model.edits_points,
        description=model.param.target_params.doc)
    model.param.watch(lambda e: setattr(target_params, "visible", not model.edits_points), "target_kind")
    clear_target = pn.widgets.Button(name="Clear target points", css_classes=["clear-target"])
    clear_target.on_click(lambda _e: model.set_points("target", model.target_points[:0]))
    clear_source = pn.widgets.Button(name="Clear source points", css_classes=["clear-source"])
    clear_source.on_click(lambda _e: model.set_points("source", model.source[:0]))
    return pn.Column(
        pn.Card(which, pn.Row(kind, count), pn.Row(seed, scale), pn.Row(cx, cy), generate,
                title="Generate points", collapsed=False, css_classes=["generator-card"]),
        pn.Card(pn.pane.Markdown("One point per row (x,y), optional header."),
                pn.Row(pn.Column(pn.pane.Markdown("source:"), source_csv),
                       pn.Column(pn.pane.Markdown("target:"), target_csv)),
                title="Load points from CSV", collapsed=True),
        target_kind, target_params, pn.Row(clear_source, clear_target), margin=0,
    )


def animation_widgets(model: SessionModel, runner: SolveRunner, job: AnimationJob) -> pn.Column:
    """Export the solve as a GIF or MP4: Make renders it in the background (progress bar), then the
    download button holds the file."""
    fmt = pn.widgets.RadioButtonGroup(options=list(ANIMATION_FORMATS), value="gif", css_classes=["animation-format"])
    make = pn.widgets.Button(name="Make animation", button_type="primary", css_classes=["make-animation"],
                             disabled=runner.states is None)
    bar = pn.indicators.Progress(value=0, max=100, height=16, css_classes=["animation-progress"])
    status = pn.pane.Markdown("", css_classes=["animation-status"])
    download = pn.widgets.FileDownload(callback=lambda: io.BytesIO(job.result or b""), filename=job.filename,
                                       label="Download animation", css_classes=["download-animation"],
                                       button_type="success", disabled=True)
    make.on_click(lambda _e: job.start(model, runner.states, fmt.value))
    runner.param.watch(lambda *_: setattr(make, "disabled", runner.states is None or job.running),
                       ["state", "pushes"])

    def update(*_: Any) -> None:
        bar.value, status.object = job.progress, job.status
        make.disabled = job.running or runner.states is None
        download.filename = job.filename
        download.disabled = job.result is None

    job.param.watch(update, ["progress", "status", "running", "result"])
    return pn.Column(pn.pane.Markdown("**Animation of the solve** (t from 0 to 1):"), pn.Row(fmt, make),
                     bar, status, download)


def export_widgets(model: SessionModel, runner: SolveRunner, messages: Messages, lock: SidebarLock) -> pn.Column:
    """Downloads (trajectories CSV, terminal CSV, session JSON, scene PNG) and session import."""
    def result() -> tuple[solver.Problem, Any]:
        problem = runner.problem or model.build_problem()
        return problem, runner.states

    def traj() -> io.StringIO:
        problem, states = result()
        return io.StringIO(trajectories_csv(problem, states))

    def terminal() -> io.StringIO:
        problem, states = result()
        return io.StringIO(terminal_csv(problem, states))

    def session() -> io.StringIO:
        problem = model.build_problem()
        same = runner.problem is not None and runner.problem.spec == problem.spec
        return io.StringIO(session_to_json(problem, runner.states if same else None,
                                           runner.summary if same else None))

    def png() -> io.BytesIO:
        return io.BytesIO(scene_png(model, runner.states, runner.energy_frame()))

    downloads = [
        pn.widgets.FileDownload(callback=traj, filename="trajectories.csv", label="Trajectories CSV",
                                css_classes=["download-trajectories"], button_type="success"),
        pn.widgets.FileDownload(callback=terminal, filename="terminal.csv", label="Terminal points CSV",
                                css_classes=["download-terminal"], button_type="success"),
    ]
    for button in downloads:
        button.disabled = runner.states is None
    runner.param.watch(lambda *_: [setattr(b, "disabled", runner.states is None) for b in downloads],
                       ["state", "pushes"])
    session_button = pn.widgets.FileDownload(callback=session, filename="session.json",
                                             label="Session (problem + result) JSON",
                                             css_classes=["download-session"], button_type="success")
    png_button = pn.widgets.FileDownload(callback=png, filename="mfc_scene.png", label="Scene + energies PNG",
                                         css_classes=["download-png"], button_type="success")

    def load_session(event: param.parameterized.Event) -> None:
        if event.new is None:
            return
        problem, states, summary = session_from_json(uploaded_text(event.new, "session"))  # all checked first
        runner.load_result(problem, states, summary)
        model.preset = ""
        model.load_spec(problem.spec)
        messages.note(f"Loaded session '{problem.name}'" + (" with its result." if states is not None
                                                             else " (no result)."))

    session_input = pn.widgets.FileInput(accept=".json", css_classes=["session-upload"])
    lock.locks(session_input)
    session_input.param.watch(lock.applying(_guard(messages, load_session)), "value")
    return pn.Column(pn.Row(*downloads), pn.Row(session_button), pn.Row(png_button),
                     pn.pane.Markdown("**Load a session or problem file (JSON):**"), session_input)


def run_bar(model: SessionModel, runner: SolveRunner, messages: Messages) -> pn.Row:
    """Run / Pause / Resume / Stop / Reset, the iteration counter, progress and the status line."""
    def button(name: str, css: str, kind: str = "default") -> pn.widgets.Button:
        return pn.widgets.Button(name=name, button_type=kind, css_classes=[css], width=90, height=36,
                                 sizing_mode="fixed")

    run = button("▶ Run", "run-button", "primary")
    pause = button("Pause", "pause-button")
    resume = button("Resume", "resume-button")
    stop = button("■ Stop", "stop-button", "danger")
    reset = button("Reset", "reset-button")
    warm = pn.widgets.Checkbox(name="warm", value=True, css_classes=["warm-check"], width=60, height=20,
                               sizing_mode="fixed", margin=(14, 0, 5, 5))
    warm_help = pn.widgets.TooltipIcon(value="Warm: Run continues from the last result when the problem "
                                             "changed only a little (same dynamics and target kind, most "
                                             "points kept). Reset forgets the result.", margin=(10, 5, 5, 0))

    def on_run(_e: Any) -> None:
        try:
            problem = model.build_problem()
        except solver.ProblemError as err:
            messages.error(f"Cannot run: {err}")
            return
        messages.clear()
        warnings = solver.problem_warnings(problem)  # solved anyway, as on the command line
        if warnings:
            messages.note("Warning: " + " · ".join(warnings))
        runner.start(problem, warm=warm.value)

    run.on_click(on_run)
    pause.on_click(lambda _e: runner.pause())
    resume.on_click(lambda _e: runner.resume())
    stop.on_click(lambda _e: runner.request_stop())
    reset.on_click(lambda _e: (runner.reset(), messages.clear()))

    def buttons(state: str) -> None:
        pause.disabled = state != "running"
        resume.disabled = state != "paused"
        stop.disabled = state not in ("running", "paused")

    buttons(runner.state)
    runner.param.watch(lambda e: buttons(e.new), "state")

    def changed(*events: param.parameterized.Event) -> None:
        """A change during a solve goes to the running solve, which continues from its current iterate
        (live tuning); an invalid one waits (the validation message says why)."""
        names = [e.name for e in events if e.name not in ("message", "scene_version", "preset", "title")]
        if runner.state not in ("running", "paused") or not names:
            return
        try:
            problem = model.build_problem()
        except solver.ProblemError:
            return
        if runner.retarget(problem):
            when = "when resumed" if runner.state == "paused" else "now"
            messages.note(f"{', '.join(names)} changed during the solve: it continues from the current "
                          f"iterate with the new values ({when}).")

    model.param.watch(changed, [p for p in model.param if p != "name"])
    # the status widgets change with every publish (ten a second per solving session): plain text
    # widgets, whose update sends one string, cost the server's event loop ~0.5 ms each where Markdown
    # panes (parsed, and every property of the pane recomputed) cost ~3.6 ms
    def counter() -> str:
        return f"<b>Iteration</b> {runner.iteration} &nbsp; ({runner.state}, {runner.pushes} plot updates)"

    iteration = pn.widgets.StaticText(value=counter(), css_classes=["iteration"])
    runner.param.watch(lambda *_: setattr(iteration, "value", counter()), ["iteration", "state", "pushes"])
    progress = pn.indicators.Progress(value=int(runner.progress), max=100, height=20, css_classes=["progress"])
    runner.param.watch(lambda e: setattr(progress, "value", int(e.new)), "progress")
    status = pn.widgets.StaticText(value=html.escape(runner.status), css_classes=["status-bar"],
                                   sizing_mode="stretch_width", margin=(0, 10))
    runner.param.watch(lambda e: setattr(status, "value", html.escape(e.new)), "status")
    return pn.Column(pn.Row(run, pause, resume, stop, reset, warm, warm_help, iteration, progress), status,
                     sizing_mode="stretch_width")


def share_link(model: SessionModel) -> pn.widgets.TextInput:
    """A read-only link restoring the preset and parameters; the browser's URL follows it too."""
    link = pn.widgets.TextInput(name="Shareable link (preset + parameters)", disabled=True,
                                css_classes=["share-link"])

    def update(*_: Any) -> None:
        query = model.query()
        link.value = "?" + urlencode(query)
        if pn.state.location is not None:
            pn.state.location.update_query(**query)

    model.param.watch(update, ["preset", "eps", "delta", "delta_auto", "M", "p", "method", "lr",
                               "lr_auto", "max_iter", "time_limit", "init", "seed", "dynamics"])
    update()
    return link


def build_sidebar(model: SessionModel, runner: SolveRunner, scene: SceneEditor,
                  messages: Messages, animation: AnimationJob) -> list:
    """The sidebar: preset, scene editing, parameters, export / import, shareable link."""
    options = {"(custom scene)": "", **{name: name for name in model.param.preset.objects if name}}
    preset = pn.widgets.Select(name="Preset (paper figures, playful scenes)", options=options,
                               value=model.preset, css_classes=["preset-select"],
                               description=model.param.preset.doc)

    def choose(event: param.parameterized.Event) -> None:
        if event.new and event.new != model.preset:
            runner.reset()
            messages.clear()
            model.load_preset(event.new)

    lock = SidebarLock()
    lock.locks(preset)
    preset.param.watch(lock.applying(_guard(messages, choose)), "value")
    model.param.watch(lambda e: setattr(preset, "value", e.new), "preset")
    summary = pn.pane.Markdown(pn.bind(lambda *_: model.summary(), model.param.source,
                                       model.param.target_points, model.param.target_kind,
                                       model.param.obstacles, model.param.eps, model.param.M,
                                       model.param.delta, model.param.delta_auto, model.param.dynamics),
                               css_classes=["scene-summary"])
    return [
        preset, summary, lock.token,
        pn.Card(scene_widgets(model, scene, messages), title="Scene", css_classes=["scene-card"]),
        # below the fold: built once the page has loaded (a new tab opens sooner)
        after_load(lambda: pn.Card(parameter_widgets(model), title="Parameters", css_classes=["parameter-card"]),
                   "parameter-holder", 600),
        after_load(lambda: pn.Card(export_widgets(model, runner, messages, lock),
                                   animation_widgets(model, runner, animation), share_link(model),
                                   title="Export / import", css_classes=["export-card"]),
                   "export-holder", 60),
    ]
