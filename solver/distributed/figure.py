"""`python -m solver.distributed.figure`: docs/distributed_gap_vs_bound.png, gap V_dstr - V and the
bound (T^2/(2n)) ||K''||^2 tr(W^2) against n (quadratic case, closed forms) for four families."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .sweep import gap_curve  # noqa: E402

FAMILIES = [
    ("complete, J = 1/(n-1)", "complete", "1/(n-1)", {}),
    ("random 4-regular, J = A/4", "regular", "row", {"d": 4, "seed": 0}),
    ("ring, J = A/2", "ring", "row", {}),
    ("Erdos-Renyi p = 0.2, J = A/deg", "erdos_renyi", "row", {"p": 0.2, "seed": 0}),
]


def main(out: str = "docs/distributed_gap_vs_bound.png") -> Path:
    ns = [8, 16, 32, 64, 128, 256, 512, 1024]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (label, kind, norm, params), colour in zip(FAMILIES, ["C0", "C1", "C2", "C3"]):
        c = gap_curve(kind, ns, normalize_mode=norm, **params)
        ax.loglog(c.ns, c.gap, "o-", color=colour, label=f"gap, {label}")
        ax.loglog(c.ns, c.bound, "--", color=colour, alpha=0.7)
    ax.set_xlabel("n")
    ax.set_ylabel("V_dstr - V (solid), bound (dashed)")
    ax.set_title("U = x^2/2 - x/2, K = z^2/2, T = 1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
