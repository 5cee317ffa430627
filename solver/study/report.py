"""A sweep's report: any summary quantity against any axis, with fitted convergence rates.

For each quantity y and the chosen axis x, the sweep's finished runs are grouped by the values of the
other axes (one series each). Where x and y are positive and x spans at least ``LOG_SPAN``, the plot
is log-log and each series gets a least-squares power law, log y = a + s log x: the slope s (the
convergence rate, e.g. about -1 for Fig. 9's terminal error (65) against N) with its 95 % confidence
interval from Student's t with n - 2 degrees of freedom, and R^2. A sweep file's ``reference`` (e.g.
the paper's published values) is drawn and fitted the same way. Output: ``report.png``, ``report.json``
(every fit and point) and ``report.csv`` (one row per run: axis values and summary numbers).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ProblemError
from ..io import output_folder
from .store import INCOMPLETE, RunStore
from .sweep import sweep_axes

#: A log scale is used when every value is positive and the axis spans at least this factor.
LOG_SPAN = 4.0


@dataclass(frozen=True)
class PowerLaw:
    """log y = intercept + slope log x, fitted by least squares on n points."""

    slope: float
    intercept: float
    ci95: tuple[float, float] | None  # None with fewer than 3 points
    r2: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"slope": self.slope, "intercept": self.intercept, "slope_ci95": list(self.ci95) if self.ci95 else None,
                "r2": self.r2, "n": self.n}


def power_law_fit(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """The least-squares line through (log x, log y), with the slope's 95 % confidence interval
    s +- t_{0.975, n-2} SE(s), SE(s)^2 = (residual sum of squares / (n - 2)) / sum (log x - mean)^2."""
    from scipy import stats  # deliberate lazy import: reports only

    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    n = len(lx)
    if n < 2 or np.ptp(lx) == 0:
        raise ValueError("a power law needs at least two distinct x values")
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / total if total > 0 else 1.0
    ci = None
    if n >= 3:
        se = math.sqrt(float((resid ** 2).sum()) / (n - 2) / float(((lx - lx.mean()) ** 2).sum()))
        half = float(stats.t.ppf(0.975, n - 2)) * se
        ci = (float(slope - half), float(slope + half))
    return PowerLaw(float(slope), float(intercept), ci, r2, n)


def _value(run: dict[str, Any], name: str) -> Any:
    """An axis value or a summary number of a run, by name (axis names first; ``N`` also matches
    ``source.N`` / ``target.N``)."""
    params = run["params"]
    if name in params:
        return params[name]
    if name in run["summary"]:
        return run["summary"][name]
    for axis, value in params.items():
        if axis.endswith("." + name):
            return value
    return None


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _default_x(axes: dict[str, list]) -> str:
    for name, values in axes.items():
        if all(_numeric(v) for v in values) and len(set(values)) > 1:
            return name
    raise ProblemError("--x", "the sweep has no numeric axis with two or more values; name one with --x")


def report(store: RunStore, sweep: str, out: str | Path, x: str | None = None,
           quantities: list[str] | None = None) -> dict[str, Any]:
    """Draw and fit the sweep (see the module docstring) into ``out``; returns what ``report.json`` holds."""
    out = output_folder(out)
    result = study(store, sweep, x, quantities)
    _draw(result, out / "report.png")
    (out / "report.json").write_text(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1) + "\n")
    _table(result["table"], result["axes"], out / "report.csv")
    return result


def study(store: RunStore, sweep: str, x: str | None = None, quantities: list[str] | None = None) -> dict[str, Any]:
    """The sweep's series and fits for each quantity against ``x`` (the report's content, no files):
    ``{"sweep", "x", "axes", "runs", "quantities": {q: {"scale", "series": [...], "reference"}}, "table"}``."""
    spec = store.sweep_spec(sweep)
    axes = sweep_axes(spec)
    runs = [r for r in store.summaries(sweep) if r["status"] not in INCOMPLETE]
    if not runs:
        raise ProblemError("SWEEP", f"sweep {sweep!r} has no finished runs yet; run it with python -m solver sweep")
    x = x or _default_x(axes)
    if not all(_numeric(_value(r, x)) for r in runs):
        raise ProblemError("--x", f"{x!r} is not a numeric axis or summary number of every run; "
                                  f"axes: {', '.join(axes)}")
    reference = spec.get("reference")
    if not quantities:
        quantities = [reference["quantity"]] if reference and reference.get("quantity") else ["objective"]
    for q in quantities:
        if not any(_numeric(_value(r, q)) for r in runs):
            known = sorted(k for k, v in runs[0]["summary"].items() if _numeric(v))
            raise ProblemError("--y", f"no run has a number {q!r}; summary numbers: {', '.join(known)}")
    others = [a for a in axes if a != x and not (x == "N" and a.endswith(".N")) and len({json.dumps(v) for v in axes[a]}) > 1]
    result: dict[str, Any] = {"sweep": sweep, "x": x, "axes": list(axes), "runs": len(runs), "quantities": {},
                              "table": runs}
    for q in quantities:
        series: dict[str, list[tuple[float, float]]] = {}
        for r in runs:
            xv, yv = _value(r, x), _value(r, q)
            if _numeric(yv):
                label = ", ".join(f"{a} = {_value(r, a)}" for a in others) or "runs"
                series.setdefault(label, []).append((float(xv), float(yv)))
        points = [p for s in series.values() for p in s]
        xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
        log = bool((xs > 0).all() and (ys > 0).all() and xs.max() >= LOG_SPAN * xs.min())
        entry: dict[str, Any] = {"scale": "log-log" if log else "linear", "series": []}
        for label, pts in series.items():
            pts.sort()
            item: dict[str, Any] = {"label": label, "x": [p[0] for p in pts], "y": [p[1] for p in pts]}
            if log and len({p[0] for p in pts}) >= 2:
                item["fit"] = power_law_fit(item["x"], item["y"]).as_dict()
            entry["series"].append(item)
        if reference and reference.get("quantity", q) == q and log:
            entry["reference"] = {"label": reference.get("label", "reference"), "x": reference["x"], "y": reference["y"],
                                  "fit": power_law_fit(reference["x"], reference["y"]).as_dict()}
        result["quantities"][q] = entry
    return result


def quantities_of(store: RunStore, sweep: str) -> list[str]:
    """The summary numbers the sweep's finished runs report (what can be plotted)."""
    runs = [r for r in store.summaries(sweep) if r["status"] not in INCOMPLETE]
    return sorted({k for r in runs for k, v in r["summary"].items() if _numeric(v)})


def describe(result: dict[str, Any]) -> list[str]:
    """One line per fitted series: the slope and its 95 % interval (and the reference's)."""
    lines = []
    for q, entry in result["quantities"].items():
        for item in entry["series"] + ([entry["reference"]] if "reference" in entry else []):
            fit = item.get("fit")
            if fit is None:
                continue
            ci = fit["slope_ci95"]
            interval = f" (95% CI {ci[0]:.3f} .. {ci[1]:.3f})" if ci else ""
            lines.append(f"{q} vs {result['x']}, {item['label']}: slope {fit['slope']:.3f}{interval}, R^2 {fit['r2']:.4f}")
    return lines


def _draw(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # deliberate lazy import: figures only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quantities = result["quantities"]
    fig, axes = plt.subplots(1, len(quantities), figsize=(5.5 * len(quantities), 4.2), squeeze=False)
    for ax, (q, entry) in zip(axes[0], quantities.items()):
        for item in entry["series"] + ([entry["reference"]] if "reference" in entry else []):
            is_ref = item is entry.get("reference")
            fit = item.get("fit")
            label = item["label"] + (f" (slope {fit['slope']:.2f})" if fit else "")
            ax.plot(item["x"], item["y"], "s--" if is_ref else "o-", label=label, alpha=0.8)
            if fit:
                xs = np.array([min(item["x"]), max(item["x"])], float)
                ax.plot(xs, np.exp(fit["intercept"]) * xs ** fit["slope"], ":", color="grey", lw=1)
        if entry["scale"] == "log-log":
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(result["x"])
        ax.set_ylabel(q)
        ax.set_title(f"{q} against {result['x']} ({result['sweep']})", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(runs: list[dict[str, Any]], axes: list[str], path: Path) -> None:
    numbers = sorted({k for r in runs for k, v in r["summary"].items() if _numeric(v)})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "status", *axes, *numbers])
        for r in runs:
            w.writerow([r["key"], r["status"], *(json.dumps(r["params"].get(a)) if isinstance(r["params"].get(a), (dict, list))
                                                 else r["params"].get(a) for a in axes),
                        *(r["summary"].get(k) for k in numbers)])
