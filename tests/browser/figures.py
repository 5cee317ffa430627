"""What the browser draws: a Bokeh figure's ranges and drawable glyph rows, read from its models."""
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
  for (const doc of Bokeh.documents) for (const m of doc._all_models.values()) {
    if (m.x_range === undefined || !m.title || !m.title.text || !m.title.text.startsWith(prefix)) continue;
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
