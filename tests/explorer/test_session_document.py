"""A session's Bokeh document (no browser): priming its text panes spares the first edit a full
re-collection of the document's models (``explorer.views.prime_text_panes``); the parts built after
the page loads arrive in one such collection (``explorer.views.when_loaded``)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import bokeh.document.models as document_models
import panel as pn
from bokeh.document import Document

from explorer.controls import parameter_widgets
from explorer.model import SessionModel
from explorer.views import after_load, prime_text_panes, when_loaded


def count_recollections(monkeypatch, action: Callable[[], None]) -> int:
    """How often Bokeh re-collects a document's models during ``action()``."""
    count = [0]
    original = document_models.DocumentModelManager.recompute

    def counting(self: document_models.DocumentModelManager) -> None:
        count[0] += 1
        original(self)
    monkeypatch.setattr(document_models.DocumentModelManager, "recompute", counting)
    try:
        action()
    finally:
        monkeypatch.undo()
    return count[0]


def recollections_on_first_edit(prime: bool, monkeypatch) -> int:
    """How often Bokeh re-collects the document's models when eps is first changed, in the app's
    template holding the model's parameter widgets and a Markdown summary bound to it."""
    model = SessionModel()
    summary = pn.pane.Markdown(pn.bind(lambda eps: f"eps = {eps}", model.param.eps), css_classes=["scene-summary"])
    sidebar = [summary, parameter_widgets(model)]
    doc = Document()
    with pn.io.server.set_curdoc(doc):
        pn.template.FastListTemplate(title="test", sidebar=sidebar).server_doc(doc)
        if prime:
            prime_text_panes([sidebar])
        count = count_recollections(monkeypatch, lambda: setattr(model, "eps", 0.02))
    assert "eps = 0.02" in summary.object  # still bound to the model after priming
    return count


def test_primed_text_panes_add_no_model_at_the_first_edit(monkeypatch):
    # the premise (Panel 1.9): unprimed, the summary's first update adds its theme's stylesheet
    assert recollections_on_first_edit(False, monkeypatch) >= 1
    assert recollections_on_first_edit(True, monkeypatch) == 0


def test_parts_built_after_load_arrive_together_in_one_collection(monkeypatch):
    """Three ``after_load`` parts of a served page are built when it has loaded, in one re-collection of
    the document's models (one each made the next tab wait behind three collections)."""
    doc = Document()
    doc._session_context = lambda: SimpleNamespace(id="test", request=SimpleNamespace(arguments={}))  # served
    with pn.io.server.set_curdoc(doc):
        holders = [after_load(lambda k=k: pn.pane.Markdown(f"part {k}"), f"holder-{k}", 50) for k in range(3)]
        when_loaded(lambda: holders.append("primed"))
        doc.add_root(pn.Column(*holders[:3]).get_root(doc))
        assert all(h.objects[0].object == "Loading ..." for h in holders)  # not before the page has loaded
        # what Panel runs when the browser reports the page loaded
        count = count_recollections(monkeypatch, lambda: pn.state._on_load(doc))
    assert [h.objects[0].object for h in holders[:3]] == ["part 0", "part 1", "part 2"]
    assert holders[3] == "primed"  # later work runs after the parts, in the same batch
    assert count == 1
