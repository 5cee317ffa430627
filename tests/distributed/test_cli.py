"""`distributed CASE.json`: JSON output on good cases, one stderr line and exit code 2 on bad ones."""
import json
import subprocess
import sys

import pytest

from solver.distributed.case import CaseError, parse_case
from solver.distributed.cli import main
from solver.distributed.graphs import named_graph
from solver.distributed.model import Model
from solver.distributed.potentials import QuadraticK, QuadraticU
from solver.distributed.quadratic import gaussian_values

Q = {"U": {"kind": "quadratic", "a": 1.0, "b": 0.5}, "K": {"kind": "quadratic", "kappa": 1.0}, "T": 1.0}
KEYS = {"V", "V_dstr", "V_det", "bound", "bound_det", "V_err", "V_dstr_err", "V_det_err"}


def run(tmp_path, case, capsys):
    p = tmp_path / "CASE.json"
    p.write_text(json.dumps(case))
    code = main([str(p)])
    out, err = capsys.readouterr()
    return code, out, err


def test_named_graph_case(tmp_path, capsys):
    code, out, _ = run(tmp_path, {**Q, "n": 300, "J": {"graph": "regular", "d": 4, "seed": 1, "normalize": "row"}}, capsys)
    res = json.loads(out)
    assert code == 0 and KEYS <= res.keys()
    exact = gaussian_values(Model(1.0, QuadraticU(1.0, 0.5), QuadraticK(1.0),
                                  named_graph("regular", 300, d=4, seed=1, normalize_mode="row")))
    assert res["V"] == exact.V and res["V_err"] == 0.0  # same code path, closed form: bit-identical
    assert res["bound"] == pytest.approx(1 / 8, rel=1e-12)  # T^2 kappa^2 / (2d)


def test_matrix_and_edges_agree(tmp_path, capsys):
    M = [[0, 1, 0, 2], [1, 0, 1, 0], [0, 1, 0, 1], [2, 0, 1, 0]]
    _, out1, _ = run(tmp_path, {**Q, "n": 4, "J": M}, capsys)
    _, out2, _ = run(tmp_path, {**Q, "n": 4, "J": {"edges": [[0, 1, 1], [0, 3, 2], [1, 2, 1], [2, 3, 1]]}}, capsys)
    assert json.loads(out1)["V"] == json.loads(out2)["V"]  # same symmetric J, same arithmetic


def test_non_quadratic_case_reports_error_estimates(tmp_path, capsys):
    """A complete graph of 6 players cannot be eliminated two neighbours at a time: AIS, with its se."""
    case = {"n": 6, "T": 1.0, "U": {"kind": "quadratic", "a": 1.0}, "K": {"kind": "logcosh", "kappa": 1.5},
            "J": {"graph": "complete"}, "options": {"ais_particles": 500, "ais_target_se": None}}
    code, out, _ = run(tmp_path, case, capsys)
    res = json.loads(out)
    assert code == 0 and res["V_method"] == "ais" and res["V_err"] > 0 and res["ais_particles"] == 500
    assert res["V_dstr_method"] == "cavi_grid"
    assert res["V"] - 3 * res["V_err"] <= res["V_dstr"] <= res["V_det"]  # V <= V_dstr <= V_det within 3 se


def test_log_cosh_ring_is_exact_by_elimination(tmp_path, capsys):
    """The issue's ring of 10 (T = 2, a = 0.5, kappa = 2, J = 1/2 per edge): V = 0.7673911 by a transfer
    matrix on a fine grid; elimination's grid-refinement error is at rounding level."""
    case = {"n": 10, "T": 2.0, "U": {"kind": "quadratic", "a": 0.5}, "K": {"kind": "logcosh", "kappa": 2.0},
            "J": {"graph": "ring", "weight": 0.5}}
    code, out, _ = run(tmp_path, case, capsys)
    res = json.loads(out)
    assert code == 0 and res["V_method"] == "elimination" and res["V_err"] < 1e-12
    assert res["V"] == pytest.approx(0.7673911, abs=5e-8)  # the 7 digits


@pytest.mark.parametrize("patch,field", [
    ({"n": -3}, "n"), ({"T": 0}, "T"), ({"T": -1.0}, "T"), ({"J": [[0, 1], [1, 0], [1, 1]]}, "J"),
    ({"J": [[0, -1, 0], [-1, 0, 1], [0, 1, 0]]}, "J"), ({"U": {"kind": "quartic"}}, "U.kind"),
    ({"K": {"kind": "logcosh", "kappa": -1}}, "K.kappa"), ({"J": {"graph": "ring", "normalize": "max"}}, "J"),
    ({"J": {"graph": "regular", "d": 5}}, "J"),
    ({"J": {"edges": [[float("nan"), 1, 1]]}}, "J"),  # was cast to an integer first, with numpy's warning
])
@pytest.mark.filterwarnings("error")  # a bad case is refused before numpy would warn about it
def test_bad_cases_one_line_exit_2(tmp_path, capsys, patch, field):
    code, out, err = run(tmp_path, {**Q, "n": 3, "J": {"graph": "ring"}, **patch}, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {field}: ")
    assert ";" in err  # what is wrong; then how to fix it


def test_parse_errors_are_case_errors(tmp_path):
    with pytest.raises(CaseError):
        parse_case([1, 2])
    assert issubclass(CaseError, ValueError)
    bad = tmp_path / "x.json"
    bad.write_text("{nope")
    proc = subprocess.run([sys.executable, "-c", "import sys; from solver.distributed.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not valid JSON" in proc.stderr
