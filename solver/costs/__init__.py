"""Control costs psi and state costs L_N; one module per family, one class per kind.

Control cost (``CONTROL_COSTS``, Assumption 2.1): power psi(u) = |u|^p (p = 2 gives KE of eq. 51),
piecewise psi(u) = |u|/p for |u| <= 1 and |u|^p/p above; each says whether it is ``smooth`` (twice
continuously differentiable: power with p >= 2).

State costs enter the potential energy (eq. 52), PE = 1/(N(M-1)) sum_i sum_{j=1}^M L_N(y_{i,j}):

* ``OBSTACLES``: shapes penalized by eq. (59) with weight c_Omega = 1/(h eps) by default (section 4.5),
  gathered in one ``Obstacles`` (circle, polygon);
* ``POTENTIALS``: an external V(y) (quadratic, gaussian);
* ``INTERACTIONS``: L_N(y_i) = (1/N) sum_k W(y_i - y_k) at each time (gaussian, quadratic).

Every state cost reads the first coordinates of the state (the positions). Each class has ``kind``,
``from_spec(spec, context, where)``, ``to_spec()`` and its math; a state cost also says whether it is
``smooth`` (twice differentiable: Newton's method may be used).

To add a kind: a class decorated with its registry's ``register`` in its own module, imported below.
"""
from ..registry import CONTROL_COSTS, INTERACTIONS, OBSTACLES, POTENTIALS
from .control import PiecewiseCost, PowerCost
from .interactions import GaussianInteraction, QuadraticInteraction
from .obstacles import Circle, Obstacles
from .polygon import Polygon
from .potentials import GaussianBump, QuadraticPotential

__all__ = ["CONTROL_COSTS", "INTERACTIONS", "OBSTACLES", "POTENTIALS", "Circle", "GaussianBump",
           "GaussianInteraction", "Obstacles", "PiecewiseCost", "Polygon", "PowerCost", "QuadraticInteraction",
           "QuadraticPotential"]
