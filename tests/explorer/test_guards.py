"""Guards in the app: uploads (size, text), malformed sessions refused before anything changes, and the
warning Run gives for points inside obstacles."""
import json

import numpy as np
import panel as pn
import pytest

import solver
from explorer.controls import MAX_UPLOAD_BYTES, uploaded_text
from explorer.model import SessionModel
from solver.io import session_from_json, session_to_json


def test_an_oversized_or_binary_upload_is_refused_in_one_line():
    with pytest.raises(solver.ProblemError, match=r"^session: the file has 6\.0 MB, over the upload limit of 5 MB"):
        uploaded_text(b"x" * (6 * 2**20), "session")
    with pytest.raises(solver.ProblemError, match=r"^source CSV: is not a text file"):
        uploaded_text(b"\xff\xfe\x00", "source CSV")
    assert uploaded_text(b"0,1\n", "source CSV") == "0,1\n" and MAX_UPLOAD_BYTES == 5 * 2**20


@pytest.mark.parametrize("break_it, field", [
    (lambda d: d["result"].update(states=[[[0.0]]]), "session.result.states"),  # wrong shape
    (lambda d: d["result"].update(states="abc"), "session.result.states"),
    (lambda d: d.update(result=[1, 2]), "session.result"),
    (lambda d: d["problem"].update(eps=-1), "eps"),
    # the load shows the summary's iteration and status: int("abc") named no field, 1e400 overflowed
    (lambda d: d["result"]["summary"].update(iteration="abc"), "session.result.summary.iteration"),
    (lambda d: d["result"]["summary"].update(iteration=float("inf")), "session.result.summary.iteration"),
    (lambda d: d["result"]["summary"].update(status=[1]), "session.result.summary.status"),
])
def test_a_malformed_session_is_refused_before_anything_changes(break_it, field):
    """session_from_json checks everything the app's load applies (problem, states' shape); the load
    handler parses before it changes the scene, so a refused file leaves the scene as it was."""
    model = SessionModel()
    problem = model.build_problem()
    states = np.zeros((problem.N, problem.M, problem.dynamics.state_dim))
    doc = json.loads(session_to_json(problem, states, {"status": "converged"}))
    session_from_json(json.dumps(doc))  # the intact session reads back
    break_it(doc)
    with pytest.raises(solver.ProblemError) as err:
        session_from_json(json.dumps(doc))
    assert err.value.field == field and "\n" not in str(err.value)


def test_run_warns_about_source_points_inside_an_obstacle():
    """As on the command line: the scene is solved, and the note says which points lie inside."""
    from explorer.controls import Messages, run_bar
    from explorer.runner import SolveRunner

    model, runner = SessionModel(), SolveRunner()
    messages = Messages(model)
    x, y = model.source[0]
    model.add_obstacle(float(x), float(y), 0.05)
    bar = run_bar(model, runner, messages)
    run = next(w for w in bar.select(pn.widgets.Button) if "run-button" in w.css_classes)
    run.clicks += 1
    assert messages.info.visible and messages.info.object.startswith(
        f"Warning: source: 1 of {model.N} points lie inside an obstacle; the penalty pushes them out first")
    assert runner.state in ("running", "finished")
    runner.close()
