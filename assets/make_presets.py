"""Write one problem file per paper experiment (Figs. 1-9) into assets/.

Built on the published inputs in assets/paper-data/ (copied from the paper's data release) where they
exist, and on the paper's text (section 4) otherwise. Run: python assets/make_presets.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
DATA = HERE / "paper-data"


def load(name: str) -> tuple[dict, dict]:
    arrays = np.load(DATA / f"{name}.npz")
    params = json.loads((DATA / f"{name}.params.json").read_text())
    return {k: arrays[k] for k in arrays.files}, params


def write(name: str, spec: dict) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(spec, indent=1) + "\n")


def gaussian(mean, sigma) -> dict:
    return {"kind": "gaussian", "mean": list(map(float, mean)), "cov": float(sigma) ** 2}


def main() -> None:
    a, p = load("fig1_pot_comparison")
    write("fig1_pot_comparison", {
        "name": "Fig. 1: comparison with POT emd (N = 30, 2-D)",
        "paper": {"figure": 1, "objective": 1.98845, "kinetic": 1.97786, "nonlocal": 0.01059,
                  "emd_w2sq": 1.99082},
        "dynamics": {"kind": "velocity"}, "source": {"points": a["z"].tolist()},
        "target": {"kind": "particles", "points": a["w"].tolist()},
        "eps": p["eps"], "delta": p["delta"], "M": p["L"] + 1,
        "optimizer": {"method": "robust", "lr": p["lr"]}, "init": "paper", "seed": 0})

    for kind, value in (("samples", 4.31848), ("continuum", 3.29779)):
        a, p = load(f"fig2_gaussian_{kind}")
        target = ({"kind": "particles", "points": a["w"].tolist()} if kind == "samples"
                  else gaussian(p["center"], p["sigma"]))
        base = {"dynamics": {"kind": "velocity"}, "source": {"points": a["z"].tolist()}, "target": target,
                "eps": p["eps"], "M": p["L"] + 1, "optimizer": {"method": "robust", "lr": p["lr"]},
                "init": "paper", "seed": 0}
        write(f"fig2_gaussian_{kind}", dict(base, name=f"Fig. 2: grid to Gaussian {kind} (N = 225)",
                                            paper={"figure": 2, "objective": value}, delta=p["delta"]))
        # Fig. 3: the same with delta too small, sigma d^-1/2 N^(-0.99/d)
        small = p["sigma"] * 2 ** -0.5 * p["N"] ** (-0.99 / 2)
        write(f"fig3_gaussian_{kind}", dict(base, name=f"Fig. 3: delta too small, Gaussian {kind}",
                                            paper={"figure": 3}, delta=small))

    a, p = load("fig4_obstacles")
    write("fig4_obstacles", {
        "name": "Fig. 4: transport around two obstacles (N = 25, M = 21)",
        "paper": {"figure": 4, "objective": 16.16196, "kinetic": 2.65914, "nonlocal": 13.50282},
        "dynamics": {"kind": "velocity"}, "source": {"points": a["z"].tolist()},
        "target": gaussian(p["center"][0], p["sigma"]),
        "obstacles": [{"center": p["obst_c1"], "radius": p["obst_r"]},
                      {"center": p["obst_c2"], "radius": p["obst_r"]}],
        "obstacle_weight": 1.0 / p["eps_obst"],
        "eps": p["eps"], "delta": p["delta"], "M": p["L"] + 1,
        "optimizer": {"method": "robust", "lr": p["lr"]}, "init": "paper", "seed": 0})

    N = 10  # Fig. 5 (section 4.6): acceleration control in 1-D
    write("fig5_acceleration", {
        "name": "Fig. 5: acceleration control in 1-D (N = 10, M = 11)",
        "paper": {"figure": 5},
        "dynamics": {"kind": "acceleration"},
        "source": {"points": np.linspace(0, 1, N)[:, None].tolist(), "velocities": np.zeros((N, 1)).tolist()},
        "target": {"kind": "particles", "points": np.linspace(2, 2.5, N)[:, None].tolist(),
                   "velocities": np.linspace(-2, 2, N)[:, None].tolist()},
        "eps": 1e-4, "delta": "auto", "M": 11, "optimizer": {"method": "robust", "lr": 4e-7},
        "init": "paper", "seed": 0})

    write("fig6_landscape", {
        "name": "Fig. 6: loss landscape, two particles in 1-D (N = 2, M = 2)",
        "paper": {"figure": 6, "panels": [[0.01, 0.1], [0.1, 0.1], [0.01, 1.0], [0.1, 1.0]]},
        "dynamics": {"kind": "velocity"}, "source": {"points": [[0.0], [0.5]]},
        "target": {"kind": "particles", "points": [[1.0], [1.5]]},
        "eps": 0.01, "delta": 0.1, "M": 2, "optimizer": {"method": "robust"}, "init": "paper", "seed": 0})

    N = 20  # Figs. 7-8 (section 4.8): 1-D uniform to uniform, eps = 0.001
    z = np.linspace(0, 1, N)[:, None]
    write("fig7_small_eps", {
        "name": "Figs. 7-8: 1-D uniform to uniform along the descent (N = 20, eps = 0.001)",
        "paper": {"figure": 7},
        "dynamics": {"kind": "velocity"}, "source": {"points": z.tolist()},
        "target": {"kind": "particles", "points": (0.5 * z + 2).tolist()},
        "eps": 1e-3, "delta": "auto", "M": 5, "optimizer": {"method": "robust", "lr": 1e-5},
        "init": "paper", "seed": 0})

    published = {5: 0.005569, 10: 0.002619, 20: 0.001960, 40: 0.001093, 80: 0.000645, 100: 0.000544}
    for N, err in published.items():  # Fig. 9 (section 4.9): terminal error against N
        z = np.linspace(0, 1, N)[:, None]
        write(f"fig9_N{N:03d}", {
            "name": f"Fig. 9: 1-D uniform to uniform, N = {N}",
            "paper": {"figure": 9, "terminal_error": err},
            "dynamics": {"kind": "velocity"}, "source": {"points": z.tolist()},
            "target": {"kind": "particles", "points": (0.5 * z + 2).tolist()},
            "eps": 0.01, "delta": "auto", "M": 5, "optimizer": {"method": "robust", "lr": 3e-5},
            "init": "paper", "seed": 0})


if __name__ == "__main__":
    main()
