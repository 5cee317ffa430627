"""The GIF / MP4 export of a solve: valid files whose frames show the particles moving."""
from __future__ import annotations

import io
import time

import imageio.v2 as imageio
import numpy as np
import pytest

from explorer.animation import FRAMES, SIZE, AnimationJob, render_animation
from explorer.model import SessionModel
from solver.paths import straight_lines


def scene() -> tuple[SessionModel, np.ndarray]:
    model = SessionModel()
    source = np.asarray(model.source, dtype=float)
    return model, straight_lines(source, source + [1.5, 0.5], 6)


def test_a_gif_has_every_frame_and_the_particles_move():
    model, states = scene()
    seen = []
    data = render_animation(model, states, "gif", frames=12, progress=seen.append)
    frames = imageio.mimread(io.BytesIO(data), format="GIF")
    assert len(frames) == 12 and frames[0].shape[:2] == (SIZE, SIZE)
    assert seen[-1] == 1.0 and len(seen) == 12
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).sum() > 0  # not a still picture


def test_an_mp4_decodes_and_its_first_frame_is_the_first_gif_frame(tmp_path):
    model, states = scene()
    data = render_animation(model, states, "mp4", frames=12)
    assert data[4:8] == b"ftyp"  # an ISO media file
    path = tmp_path / "solve.mp4"
    path.write_bytes(data)
    reader = imageio.get_reader(str(path), format="FFMPEG")
    first = reader.get_data(0)
    assert first.shape[:2] == (SIZE, SIZE) and reader.count_frames() == 12
    gif_first = imageio.mimread(io.BytesIO(render_animation(model, states, "gif", frames=12)), format="GIF")[0]
    # lossy H.264 and a 256-colour GIF of the same picture: close on average, not equal
    assert np.abs(first[..., :3].astype(float) - gif_first[..., :3].astype(float)).mean() < 8.0


def test_bad_requests_say_what_is_wrong():
    model, states = scene()
    with pytest.raises(ValueError, match="format"):
        render_animation(model, states, "avi")
    with pytest.raises(ValueError, match="run a solve first"):
        render_animation(model, None, "gif")


def test_the_job_reports_progress_then_the_file():
    model, states = scene()
    job = AnimationJob()
    job.start(model, states, "gif")
    progress = []
    deadline = time.monotonic() + 60
    while job.running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job.poll()
        progress.append(job.progress)
    assert job.result is not None and job.filename == "mfc_solve.gif" and "GIF ready" in job.status
    assert len(imageio.mimread(io.BytesIO(job.result), format="GIF")) == FRAMES
    assert progress == sorted(progress) and progress[-1] == 100
