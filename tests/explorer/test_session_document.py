"""A session's Bokeh document (no browser): priming its text panes spares the first edit a full
re-collection of the document's models (``explorer.views.prime_text_panes``)."""
from __future__ import annotations

import bokeh.document.models as document_models
import panel as pn
from bokeh.document import Document

from explorer.controls import parameter_widgets
from explorer.model import SessionModel
from explorer.views import prime_text_panes


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
        count = [0]
        original = document_models.DocumentModelManager.recompute

        def counting(self: document_models.DocumentModelManager) -> None:
            count[0] += 1
            original(self)
        monkeypatch.setattr(document_models.DocumentModelManager, "recompute", counting)
        model.eps = 0.02
        monkeypatch.undo()
    assert "eps = 0.02" in summary.object  # still bound to the model after priming
    return count[0]


def test_primed_text_panes_add_no_model_at_the_first_edit(monkeypatch):
    # the premise (Panel 1.9): unprimed, the summary's first update adds its theme's stylesheet
    assert recollections_on_first_edit(False, monkeypatch) >= 1
    assert recollections_on_first_edit(True, monkeypatch) == 0
