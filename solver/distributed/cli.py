"""`python -m solver distributed CASE.json [--stages values,gap,paths,projection]`: print a case's
results as one JSON object (``explore.explore``, the same iterator the explorer's tab reads).

With the default ``--stages values`` the object is the values of ``values.compute`` (V, V_dstr, V_det,
the bounds, methods and errors); further stages add ``gap_curve`` ({"n", "gap", "gap_err", "bound"} lists
and the ``method``), ``paths``
(the final positions of player 1 under both controls) and ``projection`` (times and mean W2^2).
Exit codes: 0 on success; 2 with one line on stderr for a bad case.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .case import CaseError, load_case
from .explore import STAGES, Stage, explore


#: Where each stage goes in the output ("gap" alone is the value V_dstr - V).
KEYS = {"values": "values", "gap": "gap_curve", "paths": "paths", "projection": "projection"}


def as_json(stage: Stage) -> Any:
    """A stage's data as JSON-ready values."""
    if stage.name == "values":
        return stage.data
    if stage.name == "gap":
        c = stage.data
        return None if c is None else {"n": c.ns.tolist(), "gap": c.gap.tolist(), "gap_err": c.gap_err.tolist(),
                                       "bound": c.bound.tolist(), "method": c.method}
    if stage.name == "paths":
        t, full, dstr = stage.data
        return {"T": float(t[-1]), "full_information_final": full[-1].tolist(), "distributed_final": dstr[-1].tolist()}
    return {"times": stage.data.times.tolist(), "w2": stage.data.w2.tolist()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m solver distributed",
                                     description="V, V_dstr, V_det and the Lacker-Mukherjee-Yeung bounds of a case")
    parser.add_argument("case", help="path to CASE.json")
    parser.add_argument("--stages", default="values",
                        help=f"comma-separated stages to compute, from {','.join(STAGES)} (default: values)")
    args = parser.parse_args(argv)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    try:
        if unknown or not stages:
            raise CaseError(f"--stages: unknown stage {unknown[0] if unknown else '(none)'!r}; "
                            f"use a comma-separated list of {', '.join(STAGES)}")
        results = {KEYS[s.name]: as_json(s) for s in explore(load_case(args.case), stages)}
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = dict(results.pop("values", {}), **results)
    print(json.dumps(out, indent=2))
    return 0
