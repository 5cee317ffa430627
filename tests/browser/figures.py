"""What the browser draws, read from Bokeh's models in the page: a figure's ranges, drawable rows and
data columns, and where a data point lands on the screen. A figure is found by the start of its title;
when a plot was rebuilt (a preset, a mode change) its old models can stay in the document, so the
newest match is used."""
from __future__ import annotations


#: What a Bokeh figure draws, found by the start of its title: its ranges and, per renderer, how many of
#: its data rows are drawable (the smallest count of finite numbers over its numeric columns; a
#: multi-line's nested arrays are counted inside), read from the browser's models.
_FIGURE_STATE = """(prefix) => {
  const finite = (col) => {
    let n = 0, numeric = false;
    for (const v of col) {
      if (v != null && typeof v === 'object' && typeof v.length === 'number') {
        for (const w of v) { if (typeof w === 'number') { numeric = true; n += Number.isFinite(w); } }
      } else if (typeof v === 'number') { numeric = true; n += Number.isFinite(v); }
    }
    return numeric ? n : null;
  };
  let found = null;
  for (const doc of Bokeh.documents) for (const m of doc._all_models.values())
    if (m.x_range !== undefined && m.title && m.title.text && m.title.text.startsWith(prefix)) found = m;
  if (found) { const m = found;
    const drawn = [];
    for (const r of m.renderers) {
      if (!r.data_source) continue;
      const counts = r.data_source.columns().map(c => finite(r.data_source.get_column(c))).filter(c => c !== null);
      drawn.push(counts.length ? Math.min(...counts) : 0);
    }
    return {x: [m.x_range.start, m.x_range.end], y: [m.y_range.start, m.y_range.end], drawn: drawn};
  }
  return null;
}"""


def figure_state(page, title_prefix: str) -> dict | None:
    """Ranges and drawable rows per renderer of the figure whose title starts with ``title_prefix``."""
    return page.evaluate(_FIGURE_STATE, title_prefix)


_FIGURE_COLUMN = """([prefix, column]) => {
  let found = null;
  for (const doc of Bokeh.documents) for (const m of doc._all_models.values())
    if (m.x_range !== undefined && m.title && m.title.text && m.title.text.startsWith(prefix)) found = m;
  if (found) { const m = found;
    return m.renderers.filter(r => r.data_source).map(r => {
      const col = r.data_source.get_column(column);
      if (col == null) return null;
      const flat = [];
      for (const v of col) {
        if (v != null && typeof v === 'object' && typeof v.length === 'number') { for (const w of v) flat.push(w); }
        else flat.push(v);
      }
      return flat.map(v => (typeof v === 'number' && Number.isFinite(v)) ? v : null);
    });
  }
  return null;
}"""


def figure_column(page, title_prefix: str, column: str) -> list[list[float | None]] | None:
    """One data column of every renderer of the figure whose title starts with ``title_prefix``
    (nested arrays flattened, non-finite values as None; None for a renderer without the column)."""
    return page.evaluate(_FIGURE_COLUMN, [title_prefix, column])


def figure_columns(page, title_prefix: str, *columns: str) -> list[list[list[float | None]] | None]:
    """``figure_column`` for several columns, read at one moment (a live plot can change between two
    reads: columns read one after the other may come from different frames)."""
    return page.evaluate(f"(args) => args.slice(1).map(c => ({_FIGURE_COLUMN})([args[0], c]))",
                         [title_prefix, *columns])


_DATA_TO_CANVAS = """([prefix, x, y]) => {
  let found = null;
  for (const doc of Bokeh.documents) for (const m of doc._all_models.values())
    if (m.x_range !== undefined && m.title && m.title.text && m.title.text.startsWith(prefix)) found = m;
  if (found) { const m = found;
    const view = Bokeh.index.find_one(m);
    if (view) return [view.frame.x_scale.compute(x), view.frame.y_scale.compute(y)];
  }
  return null;
}"""


def data_to_page(page, title_prefix: str, canvas_css: str, x: float, y: float) -> tuple[float, float]:
    """Page pixel of the data point (x, y) in the figure whose title starts with ``title_prefix``, drawn
    on the first canvas matching ``canvas_css`` (Bokeh's own scales, so clicks land where a person aims)."""
    cx, cy = page.evaluate(_DATA_TO_CANVAS, [title_prefix, x, y])
    box = page.locator(canvas_css).first.bounding_box()
    return box["x"] + cx, box["y"] + cy


#: The figure's height and the bottom of its x axis' box (ticks, tick labels and axis label, as Bokeh
#: measured them), in pixels; the newest figure whose title starts with ``prefix``.
_AXIS_ROOM = """(prefix) => {
  let found = null;
  for (const doc of Bokeh.documents) for (const m of doc._all_models.values())
    if (m.x_range !== undefined && m.title && m.title.text && m.title.text.startsWith(prefix)) found = m;
  if (!found) return null;
  const plot = Bokeh.index.find_one(found);
  const axis = plot.views.find_one(found.below[0]);
  return {height: plot.bbox.height, axis_bottom: axis.bbox.bottom};
}"""


def axis_room(page, title_prefix: str) -> dict | None:
    """{height, axis_bottom} of the figure whose title starts with ``title_prefix`` (``_AXIS_ROOM``)."""
    return page.evaluate(_AXIS_ROOM, title_prefix)
