"""`python -m solver distributed CASE.json`: print the values of a case as one JSON object.

Exit codes: 0 on success; 2 with one line on stderr for a bad case.
"""
from __future__ import annotations

import argparse
import json
import sys

from .case import CaseError, load_case
from .values import compute


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m solver distributed",
                                     description="V, V_dstr, V_det and the Lacker-Mukherjee-Yeung bounds of a case")
    parser.add_argument("case", help="path to CASE.json")
    args = parser.parse_args(argv)
    try:
        result = compute(load_case(args.case))
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
