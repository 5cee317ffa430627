"""The solve as an animation: the particles moving along their trajectories from t = 0 to t = 1, as a
GIF or an MP4 (matplotlib frames, written by imageio; MP4 through imageio-ffmpeg's bundled ffmpeg).

``render_animation`` is a plain function (tests call it); ``AnimationJob`` runs it in a background
thread for the app and is polled from the server's event loop (``poll``), which publishes its progress
and, when done, the file to download: no Panel object is touched from the thread.
"""
from __future__ import annotations

import io
import os
import tempfile
import threading
from typing import TYPE_CHECKING, Callable

import numpy as np
import param

from solver.paths import at_time

from . import plots
from .exports import pyplot
from .model import SessionModel
from .scene import scene_bounds

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = ("gif", "mp4")
#: Frames of an animation (t from 0 to 1) and frames per second: a 4 s clip.
FRAMES, FPS = 48, 12
#: Frame size in pixels (a multiple of 16, as H.264 encoders want).
SIZE = 640


def render_animation(model: SessionModel, states: np.ndarray, fmt: str, frames: int = FRAMES, fps: int = FPS,
                     progress: Callable[[float], None] | None = None,
                     cancel: threading.Event | None = None) -> bytes:
    """The bytes of a GIF or MP4 of ``states`` (N, M, D) in ``model``'s scene: obstacles, target and
    the faint trajectories drawn once, the particles at t = k / (frames - 1) on each frame.
    ``progress(fraction)`` is called after each frame; ``cancel`` stops early (ValueError)."""
    if fmt not in FORMATS:
        raise ValueError(f"animation format: must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if states is None or len(states) == 0:
        raise ValueError("animation: there are no trajectories yet; run a solve first")
    plt = pyplot()
    dim = model.dim
    fig, ax = plt.subplots(figsize=(SIZE / 100, SIZE / 100), dpi=100)
    _draw_background(ax, model, states)
    moving = ax.scatter([], [], s=16, color=plots.TERMINAL_COLOR, zorder=4, label="particles at time t",
                        animated=True)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(model.title)
    clock = ax.text(0.98, 0.98, "", transform=ax.transAxes, ha="right", va="top", fontsize=11, animated=True)
    images = []
    try:
        fig.canvas.draw()  # everything but the particles and the clock, once (blitting: ~10x faster)
        background = fig.canvas.copy_from_bbox(fig.bbox)
        for k in range(frames):
            if cancel is not None and cancel.is_set():
                raise ValueError("animation: cancelled")
            t = k / max(frames - 1, 1)
            fig.canvas.restore_region(background)
            moving.set_offsets(plots.as_scene_xy(at_time(states, t), dim, t))
            clock.set_text(f"t = {t:.2f}")
            ax.draw_artist(moving)
            ax.draw_artist(clock)
            images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
            if progress is not None:
                progress((k + 1) / frames)
    finally:
        plt.close(fig)
    return _encode(images, fmt, fps)


def _draw_background(ax: Axes, model: SessionModel, states: np.ndarray) -> None:
    """Obstacles, target points, the trajectories (faint) and the sources, with fixed limits."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Polygon

    dim = model.dim
    kx, ky = plots.scene_axes(dim)
    for shape in model.obstacle_shapes() if dim >= 2 else []:
        if shape is not None:
            ax.add_patch(Polygon(shape.outline(), closed=True, color="#bbbbbb", alpha=0.6))
    ax.add_collection(LineCollection(plots.trajectory_xy(states, dim), colors=plots.TRAJ_COLOR, alpha=0.3,
                                     linewidths=0.7))
    if model.edits_points and len(model.target_points):
        tgt = plots.as_scene_xy(model.target_points, dim, 1.0)
        ax.scatter(tgt[:, 0], tgt[:, 1], s=18, marker="D", color=plots.TARGET_COLOR, label="target", zorder=3)
    src = plots.as_scene_xy(states[:, 0], dim, 0.0)
    ax.scatter(src[:, 0], src[:, 1], s=10, color=plots.SOURCE_COLOR, alpha=0.5, label="source", zorder=3)
    x0, x1, y0, y1 = scene_bounds(model, states)  # the explorer's view: points, target, obstacles, paths
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel=kx, ylabel=ky)


def _encode(images: list[np.ndarray], fmt: str, fps: int) -> bytes:
    import imageio.v2 as imageio  # at the first animation: not on the server's path to its first tab

    if fmt == "gif":
        buffer = io.BytesIO()
        imageio.mimwrite(buffer, images, format="GIF", duration=1000 / fps, loop=0)
        return buffer.getvalue()
    handle, path = tempfile.mkstemp(suffix=".mp4")  # ffmpeg writes to a file
    os.close(handle)
    try:
        with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                pixelformat="yuv420p") as writer:
            for image in images:
                writer.append_data(image)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.remove(path)


class AnimationJob(param.Parameterized):
    """One session's animation export in a background thread. ``start`` begins a render; ``poll()``
    (a periodic callback on the event loop) copies the thread's progress and result into ``progress``,
    ``status`` and ``result`` (bytes, with ``filename``)."""

    progress = param.Integer(default=0, bounds=(0, 100), doc="Percent of frames rendered.")
    status = param.String(default="", doc="What the export is doing, or its one-line error.")
    running = param.Boolean(default=False)
    result = param.Bytes(default=None, allow_None=True, doc="The finished file.")
    filename = param.String(default="mfc_solve.gif")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._lock = threading.Lock()
        self._mail: dict = {}
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    def start(self, model: SessionModel, states: np.ndarray | None, fmt: str) -> None:
        if self.running:
            return
        self.param.update(progress=0, result=None, running=True, status=f"Rendering the {fmt.upper()} ...",
                          filename=f"mfc_solve.{fmt}")
        self._cancel.clear()

        def work() -> None:
            def report(fraction: float) -> None:
                with self._lock:
                    self._mail["progress"] = int(100 * fraction)
            try:
                data = render_animation(model, states, fmt, progress=report, cancel=self._cancel)
                outcome = {"result": data, "status": f"{fmt.upper()} ready: {len(data) / 1e6:.2f} MB, "
                                                    f"{FRAMES} frames"}
            except ValueError as err:
                outcome = {"status": str(err)}
            except Exception as err:  # an encoder failure must not kill the session
                outcome = {"status": f"animation failed: {type(err).__name__}: {err}"}
            with self._lock:
                self._mail.update(outcome, done=True)

        self._thread = threading.Thread(target=work, name="mfc-animation", daemon=True)
        self._thread.start()

    def poll(self) -> None:
        with self._lock:
            mail, self._mail = self._mail, {}
        if not mail:
            return
        if mail.pop("done", False):
            self.param.update(running=False, progress=100 if "result" in mail else self.progress, **mail)
        elif "progress" in mail:
            self.progress = mail["progress"]

    def close(self, timeout: float = 5.0) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)
