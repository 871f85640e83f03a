"""A sparse linear programme built from arrays, solved by HiGHS (``highspy``) or GLPK.

The lower bounds of :mod:`agentev.optimization.bound` have tens of thousands of variables
whose coefficients come straight from NumPy arrays: building them term by term in Pyomo
would take longer than solving them. :class:`LinearProgram` collects variables in named
blocks and constraints as coordinate triplets, and :meth:`LinearProgram.solve` hands the
matrix to HiGHS directly or writes a free-format MPS file for ``glpsol``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from agentev.optimization.solvers import check_available

INF = math.inf
#: Programmes with more columns than this are solved by HiGHS's interior point method.
IPM_MIN_COLUMNS = 20_000


class LPError(RuntimeError):
    """A linear programme was not solved to optimality (infeasible, unbounded or failed)."""


@dataclass
class LPResult:
    """An optimal solution: objective value (constant included) and the variable values."""

    objective: float
    values: np.ndarray


class LinearProgram:
    """``min c x + constant`` subject to ``row_lo <= A x <= row_hi``, ``lo <= x <= hi``."""

    def __init__(self) -> None:
        self.cost: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.num_vars = 0
        self.constant = 0.0
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []
        self.num_rows = 0

    def variables(self, shape, lo=0.0, hi=INF, cost=0.0) -> np.ndarray:
        """Add a block of variables; returns their column indices in ``shape``."""
        n = int(np.prod(shape))
        idx = np.arange(self.num_vars, self.num_vars + n).reshape(shape)
        self.num_vars += n
        self.cost.append(np.broadcast_to(np.asarray(cost, dtype=float), shape).ravel().copy())
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), shape).ravel().copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), shape).ravel().copy())
        return idx

    def rows(self, n: int, lo=-INF, hi=INF) -> np.ndarray:
        """Add ``n`` constraint rows with bounds; returns their indices."""
        idx = np.arange(self.num_rows, self.num_rows + n)
        self.num_rows += n
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)).copy())
        return idx

    def terms(self, rows, cols, values=1.0) -> None:
        """Add coefficients ``A[rows, cols] += values`` (broadcast together)."""
        r, c, v = np.broadcast_arrays(
            np.asarray(rows), np.asarray(cols), np.asarray(values, dtype=float)
        )
        self._rows.append(r.ravel())
        self._cols.append(c.ravel())
        self._vals.append(v.ravel())

    def matrix(self) -> sp.csc_matrix:
        """The constraint matrix (duplicate entries summed)."""
        if not self._rows:
            return sp.csc_matrix((self.num_rows, self.num_vars))
        return sp.coo_matrix(
            (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
            shape=(self.num_rows, self.num_vars),
        ).tocsc()

    def solve(self, solver: str = "highs", time_limit_s: float = 300.0) -> LPResult:
        """Solve to optimality.

        Args:
            solver: ``"highs"`` or ``"glpk"``.
            time_limit_s: Wall-clock limit (s).

        Raises:
            LPError: if the programme is infeasible or unbounded, or the solver stops early.
            SolverUnavailableError: if the solver is not installed.
            ValueError: for another solver name.
        """
        if solver not in ("highs", "glpk"):
            raise ValueError(
                f"solver = {solver!r}: a linear programme is solved by 'highs' or 'glpk'"
            )
        check_available(solver)
        c = np.concatenate(self.cost) if self.cost else np.zeros(0)
        lo = np.concatenate(self.lo) if self.lo else np.zeros(0)
        hi = np.concatenate(self.hi) if self.hi else np.zeros(0)
        rlo = np.concatenate(self.row_lo) if self.row_lo else np.zeros(0)
        rhi = np.concatenate(self.row_hi) if self.row_hi else np.zeros(0)
        a = self.matrix()
        solve = _solve_highs if solver == "highs" else _solve_glpk
        x, obj = solve(c, a, rlo, rhi, lo, hi, time_limit_s)
        return LPResult(obj + self.constant, x)


def _new_highs():
    """A silent ``highspy.Highs``.

    HiGHS 1.16 prints its banner from C++ when constructed, whatever ``output_flag`` says, so
    standard output is closed at the file level meanwhile.
    """
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    return h


def _solve_highs(c, a, rlo, rhi, lo, hi, time_limit_s) -> tuple[np.ndarray, float]:
    import highspy

    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = len(c)
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = c
    lp.col_lower_ = np.where(np.isinf(lo), -inf, lo)
    lp.col_upper_ = np.where(np.isinf(hi), inf, hi)
    lp.row_lower_ = np.where(np.isinf(rlo), -inf, rlo)
    lp.row_upper_ = np.where(np.isinf(rhi), inf, rhi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    h = _new_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", float(time_limit_s))
    # primal simplex: the heavy scenario's lower bound (13k columns) in 1.6 s, against 8.1 s
    # with HiGHS's default (dual) simplex, 2.1 s with its interior point, 117 s with PDLP;
    # for the 72 h continuous one (31k columns) the interior point: 10.5 s against 19 s
    if len(c) > IPM_MIN_COLUMNS:
        h.setOptionValue("solver", "ipm")
    else:
        h.setOptionValue("simplex_strategy", 4)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise LPError(f"HiGHS: {h.modelStatusToString(status)}")
    return np.asarray(h.getSolution().col_value), float(h.getInfo().objective_function_value)


def _num(value: float) -> str:
    """A float at full round-trip precision."""
    return repr(float(value))


def _mps(c, a, rlo, rhi, lo, hi) -> str:
    """The programme as free-format MPS (rows ``R<i>``, columns ``C<j>``)."""
    lines = ["NAME agentev_bound", "ROWS", " N obj"]
    kinds = []
    for i in range(a.shape[0]):
        if rlo[i] == rhi[i]:
            kinds.append("E")
        elif np.isinf(rhi[i]):
            kinds.append("G")
        elif np.isinf(rlo[i]):
            kinds.append("L")
        else:
            kinds.append("R")  # ranged: an L row with a range
        lines.append(f" {'L' if kinds[-1] == 'R' else kinds[-1]} R{i}")
    lines.append("COLUMNS")
    for j in range(a.shape[1]):
        if c[j] != 0.0:
            lines.append(f" C{j} obj {_num(c[j])}")
        for k in range(a.indptr[j], a.indptr[j + 1]):
            lines.append(f" C{j} R{a.indices[k]} {_num(a.data[k])}")
        if c[j] == 0.0 and a.indptr[j] == a.indptr[j + 1]:
            lines.append(f" C{j} obj 0.0")
    lines.append("RHS")
    for i, kind in enumerate(kinds):
        value = rlo[i] if kind in ("E", "G") else rhi[i]
        if value != 0.0:
            lines.append(f" rhs R{i} {_num(value)}")
    lines.append("RANGES")
    for i, kind in enumerate(kinds):
        if kind == "R":
            lines.append(f" rng R{i} {_num(rhi[i] - rlo[i])}")
    lines.append("BOUNDS")
    for j in range(len(c)):
        lo_j, hi_j = lo[j], hi[j]
        if np.isinf(lo_j) and np.isinf(hi_j):
            lines.append(f" FR bnd C{j}")
            continue
        if lo_j == hi_j:
            lines.append(f" FX bnd C{j} {_num(lo_j)}")
            continue
        if np.isinf(lo_j):
            lines.append(f" MI bnd C{j}")
        elif lo_j != 0.0:
            lines.append(f" LO bnd C{j} {_num(lo_j)}")
        if not np.isinf(hi_j):
            lines.append(f" UP bnd C{j} {_num(hi_j)}")
    lines.append("ENDATA")
    return "\n".join(lines) + "\n"


def _solve_glpk(c, a, rlo, rhi, lo, hi, time_limit_s) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory(prefix="agentev-lp-") as tmp:
        model = os.path.join(tmp, "bound.mps")
        out = os.path.join(tmp, "bound.sol")
        with open(model, "w", encoding="ascii") as fh:
            fh.write(_mps(c, a, rlo, rhi, lo, hi))
        cmd = ["glpsol", "--freemps", model, "--tmlim", str(int(math.ceil(time_limit_s)))]
        done = subprocess.run([*cmd, "--write", out], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not os.path.exists(out):
            raise LPError(f"glpsol failed: {done.stdout[-500:]}{done.stderr[-500:]}")
        return _read_glpk_solution(out, len(c))


def _read_glpk_solution(path: str, num_cols: int) -> tuple[np.ndarray, float]:
    """Read glpsol's ``--write`` plain-text solution (GLPK 5 format)."""
    x = np.zeros(num_cols)
    objective = math.nan
    with open(path, encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "s":
                # s bas ROWS COLS PRIM DUAL OBJ
                if parts[4] != "f" or parts[5] != "f":
                    raise LPError(
                        f"glpsol: solution status {parts[4]}{parts[5]} (primal, dual), not optimal"
                    )
                objective = float(parts[6])
            elif parts[0] == "j":
                x[int(parts[1]) - 1] = float(parts[3])
    if math.isnan(objective):
        raise LPError("glpsol wrote no solution")
    return x, objective
