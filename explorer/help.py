"""The help tab: the equations (KaTeX), what each control does (Markdown), and the kinds the solver
offers, listed from its registries (a newly registered kind appears here with its docstring)."""
from __future__ import annotations

import panel as pn

import solver

INTRO = """
### What is solved
The blob method of Craig, Elamvazhuthi and Lee approximates a mean-field control problem with a
terminal constraint by N particles with trajectories y<sub>i,j</sub> at times t<sub>j</sub> = j h,
h = 1/(M − 1), starting at the source points z<sub>i</sub>; μ<sub>1</sub> is the empirical measure of the
terminal points and m<sub>1</sub> the target. It minimizes the fully discrete objective (eq. 50):
"""
EQUATIONS = [
    r"E(y) = \underbrace{\frac{1}{N}\sum_{i}\sum_{j} h\,\psi(u_{i,j})}_{\text{kinetic}}"
    r" + \underbrace{\frac{1}{N(M-1)}\sum_i\sum_{j=1}^{M} L(y_{i,j})}_{\text{obstacles / potential}}"
    r" + \underbrace{\frac{1}{\varepsilon}\,\big\|k_\delta * \mu_1 - k_\delta * m_1\big\|_{L^2}^2}_{\text{nonlocal}}",
    r"\psi(u) = |u|^p, \qquad u_{i,j} = \frac{y_{i,j+1}-y_{i,j}}{h}\ \text{(velocity)},\quad "
    r"u_{i,j} = \frac{y_{i,j+1}-2y_{i,j}+y_{i,j-1}}{h^2}\ \text{(acceleration)}",
    r"L(y) = c \sum_k \max\big(r_k^2 - |y - c_k|^2,\, 0\big), \qquad c = \frac{1}{h\,\varepsilon}\ \text{(auto)},"
    r" \qquad \delta = N^{-0.99/d}\ \text{(auto)}",
]
PARAMETERS = """
### Controls
* **Scene**: *edit source* / *edit target*: click to add a point, drag to move it, select it and press
  Backspace to delete. *place obstacles*: a click places a circle of the given radius; a click on a
  circle selects it (edit its radius, or delete it). The table lists the obstacles (cells are editable).
  *Generate points* draws a grid, uniform, Gaussian, mixture, ring or two-moons cloud (seeded).
* **ε** weighs the terminal penalty: smaller ε pulls the terminal points closer to the target (and
  makes the problem stiffer). **δ** is the blob width of the mollifier; too small a δ lets particles
  cluster on target points (Fig. 3). **M** is the number of time points; **p** the control cost exponent.
* **Optimizer**: *robust* is the fast default; *gd* is the paper's gradient descent (with its learning
  rate); the others are listed below. The solve stops at the iteration or time limit.
* **Run** starts a solve in the background; the plots update several times a second. **Pause** /
  **Resume** / **Stop** control it (Stop keeps the best iterate); **Reset** clears the result.
  **Live tuning**: a parameter, point or obstacle changed during a solve goes to the running solve,
  which continues from its current iterate (the status line names the values it uses). With
  **warm** ticked, Run continues from the last result when the problem changed only a little.
  The **time** slider or play button moves the particles along their trajectories.
* **Loss landscape** (beside the scene): the objective on the plane through the current iterate
  spanned by the gradient (a) and the last step (b), refreshed about once a second, with the
  iterate's path. The *Fig. 6 landscape* tab shows the objective over the two terminal points of the
  paper's N = 2, M = 2, 1-D problem.
* **Export**: trajectories and terminal points as CSV (the CLI's columns), the whole session as JSON
  (load it back to restore it exactly), a PNG of the scene and energies, the solve as a GIF or MP4
  animation (Make animation, then Download); each plot's toolbar also saves a PNG. The browser's URL (and the shareable link) restores the preset and parameters.
"""


CHOICES = (("Dynamics", solver.DYNAMICS), ("Targets", solver.TARGETS), ("Obstacle shapes", solver.OBSTACLES),
           ("Initializations", solver.INITS), ("Optimizers", solver.OPTIMIZERS))


def choices_markdown() -> str:
    """Every registered kind with the first line of its docstring, per registry."""
    return "### What you can choose\n" + "\n".join(
        f"* **{title}**: " + "; ".join(f"*{kind}*: {registry.describe(kind)}" for kind in registry)
        for title, registry in CHOICES)


def help_panel() -> pn.Column:
    """Markdown text with the objective's equations typeset by KaTeX."""
    return pn.Column(
        pn.pane.Markdown(INTRO, disable_math=True),
        *[pn.pane.LaTeX(f"$${eq}$$", renderer="katex", styles={"font-size": "15px"}) for eq in EQUATIONS],
        pn.pane.Markdown(PARAMETERS, disable_math=True),
        pn.pane.Markdown(choices_markdown(), disable_math=True, css_classes=["help-choices"]),
        css_classes=["help-text"], max_width=900)
