"""``python -m solver runs list | show ID | compare ID ID | export ID --out DIR | report SWEEP --out DIR``.

IDs are run keys or unique prefixes of them (at least 4 characters), as ``runs list`` prints them.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from ..errors import ProblemError
from ..io import output_folder, trajectories_csv
from ..problem import problem_from_dict
from .report import describe, report
from .store import RunStore

#: Characters of a key shown by ``list`` (enough to be unique in any store people keep).
SHORT_KEY = 12


def add_parser(sub: Any, default_store: str) -> argparse.ArgumentParser:
    """The ``runs`` sub-command and its own sub-commands (argparse only)."""
    runs = sub.add_parser("runs", help="list, show, compare, export the runs of a store; report a sweep")
    commands = runs.add_subparsers(dest="runs_command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        c = commands.add_parser(name, help=help_text)
        c.add_argument("--store", default=default_store, metavar="DIR", help=f"run store folder (default {default_store})")
        return c

    c = command("list", "the store's runs, newest first (or one sweep's, or the sweeps)")
    c.add_argument("--sweep", help="only this sweep's runs, with their axis values")
    c.add_argument("--sweeps", action="store_true", help="list the sweeps instead")
    c = command("show", "one run's summary, problem and provenance")
    c.add_argument("id")
    c = command("compare", "two runs side by side: summary numbers and what differs in their problems")
    c.add_argument("id", nargs=2)
    c = command("export", "a run's problem.json, summary.json, trajectories.csv and run.json into a folder")
    c.add_argument("id")
    c.add_argument("--out", required=True)
    c = command("report", "plot a sweep's quantities against an axis with fitted rates (PNG, JSON, CSV)")
    c.add_argument("sweep")
    c.add_argument("--out", required=True)
    c.add_argument("--x", help="the axis (default: the sweep's first numeric axis)")
    c.add_argument("--y", action="append", help="a summary quantity (repeatable; default objective, or the "
                                                 "sweep's reference quantity)")
    return runs


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.8g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[_format(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def main(args: argparse.Namespace) -> int:
    if not Path(args.store).exists():
        raise ProblemError("--store", f"no run store at {args.store}; give the folder a sweep or solve --store wrote")
    store = RunStore(args.store)
    return COMMANDS[args.runs_command](store, args)


def _list(store: Any, args: argparse.Namespace) -> int:
    if args.sweeps:
        rows = [[s["name"], s["members"], s["finished"], time.strftime("%Y-%m-%d %H:%M", time.localtime(s["created"]))]
                for s in store.sweeps()]
        print(_table(["sweep", "runs", "finished", "defined"], rows))
        return 0
    runs = store.list(args.sweep)
    axes = list(runs[0]["params"]) if args.sweep and runs else []
    head = [c for c in ("name", "status", "objective", "seconds", "iterations", "N", "M", "eps", "method", "origin")
            if c not in axes]  # a sweep's axes come last, once
    rows = [[r["key"][:SHORT_KEY], *(r[c] for c in head), *(json.dumps(r["params"][a]) for a in axes)] for r in runs]
    print(_table(["id", *head, *axes], rows))
    return 0


def _show(store: Any, args: argparse.Namespace) -> int:
    r = store.get(args.id, states=False)
    info = {"key": r.key, "status": r.status, "error": r.error, "origin": r.origin, "host": r.host,
            "version": r.version, "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created)),
            "wall_seconds": r.wall, "summary": r.summary, "problem": r.problem}
    print(json.dumps(info, indent=1))
    return 0


def _flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(spec, dict):
        out: dict[str, Any] = {}
        for k, v in spec.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: spec}


def _compare(store: Any, args: argparse.Namespace) -> int:
    a, b = (store.get(i, states=False) for i in args.id)
    keys = [k for k in dict.fromkeys([*a.summary, *b.summary])
            if not isinstance(a.summary.get(k, b.summary.get(k)), (dict, list))]
    rows = [[k, a.summary.get(k), b.summary.get(k)] for k in keys]
    rows.insert(0, ["status", a.status, b.status])
    print(_table(["", a.key[:SHORT_KEY], b.key[:SHORT_KEY]], rows))
    fa, fb = _flatten(a.problem), _flatten(b.problem)
    differ = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
    if differ:
        shown = [[k, _short(fa.get(k)), _short(fb.get(k))] for k in differ]
        print("\nproblem differences:\n" + _table(["key", "first", "second"], shown))
    else:
        print("\nthe two runs solve the same problem")
    return 0


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _export(store: Any, args: argparse.Namespace) -> int:
    r = store.get(args.id)
    out = output_folder(args.out)
    (out / "problem.json").write_text(json.dumps(r.problem, indent=1) + "\n")
    (out / "summary.json").write_text(json.dumps(r.summary, indent=1) + "\n")
    (out / "run.json").write_text(json.dumps({"key": r.key, "status": r.status, "error": r.error, "origin": r.origin,
                                              "host": r.host, "version": r.version, "created": r.created,
                                              "seed": r.problem.get("seed")}, indent=1) + "\n")
    if r.states is not None:
        (out / "trajectories.csv").write_text(trajectories_csv(problem_from_dict(r.problem), r.states))
    print(f"run {r.key[:SHORT_KEY]} ({r.status}) -> {out}")
    return 0


def _report(store: Any, args: argparse.Namespace) -> int:
    result = report(store, args.sweep, args.out, args.x, args.y)
    for line in describe(result):
        print(line)
    print(f"-> {Path(args.out) / 'report.png'}, report.json, report.csv")
    return 0


COMMANDS = {"list": _list, "show": _show, "compare": _compare, "export": _export, "report": _report}
