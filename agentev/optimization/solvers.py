"""Solver choice and options, in one place.

* ``"highs"`` (default): HiGHS through ``highspy`` and Pyomo's persistent interface
  (``pyomo.contrib.solver``): the model is passed once and only changed parameters are sent
  on each re-plan.
* ``"glpk"``: GLPK's ``glpsol`` through Pyomo's legacy ``SolverFactory`` (the model is
  written out on every solve). Limits go in as ``tmlim`` and ``mipgap``; a gap-stopped solve
  is reported by glpsol as ``feasible``.
* Any other name is handed to Pyomo's legacy ``SolverFactory``.

Research runs are deterministic: one thread, a fixed random seed, a relative MIP gap and a
node limit decide where the search stops; the wall-clock limit is only a safety net, and a
solve that hits it is counted as a fallback.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

INSTALL_HINTS = {
    "highs": "pip install highspy",
    "glpk": "apt-get install glpk-utils (Debian/Ubuntu), which provides glpsol",
    "cbc": "apt-get install coinor-cbc",
}


#: HiGHS options for a charging plan unless ``sub_mip_heuristics`` is set.
#:
#: * The sub-MIP heuristics (RINS, RENS, root reduced-cost fixing) took 85 to 90 % of the
#:   slowest re-plans of a light day (2.25 s of 2.6 s in one): with them off, 43 re-plans of
#:   light seed 1 went from a median of 174 ms and a p95 of 920 ms to 118 ms and 588 ms, every
#:   objective within the 1 % gap of the default's.
#: * Strong branching (``mip_pscost_minreliable`` 8) took 70 % of the simplex iterations of
#:   the slow re-plans, and cut separation in the tree most of the rest: pseudo-cost
#:   branching from the start and cuts at the root only took 111 re-plans of light seeds 1
#:   and 3 from 19.7 s to 13.5 s (p95 560 to 265 ms), objectives +0.04 % on average, each
#:   within the 1 % gap.
HIGHS_MIP_OPTIONS: dict[str, bool | int] = {
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_pscost_minreliable": 0,
    "mip_allow_cut_separation_at_nodes": False,
}


class SolverUnavailableError(RuntimeError):
    """The requested solver is not installed; the message says how to install it."""


@dataclass(frozen=True)
class SolverOptions:
    """How to solve a charging plan.

    Attributes:
        solver: ``"highs"``, ``"glpk"`` or another Pyomo solver name.
        mip_gap: Relative MIP gap at which the search stops.
        node_limit: Branch-and-bound node limit (HiGHS), a deterministic work limit.
        time_limit_s: Wall-clock safety net (s); hitting it counts as a fallback.
        threads: Solver threads (1 for deterministic research runs).
        seed: Solver random seed.
        sub_mip_heuristics: Keep HiGHS's sub-MIP heuristics (RINS, RENS, root reduced
            cost). Off by default: they dominate the time of a rolling re-plan (see
            ``HIGHS_MIP_OPTIONS``); a whole-day plan (the ``hindsight``) finds better
            incumbents with them.
        rounding_gap: If set, a fleet-level plan (``solve_relax_and_fix(fleet=True)``)
            is first made by rounding its LP relaxation's counts up, and kept if it is
            within this relative gap of the LP bound; else (and if None) the counts' MILPs
            are solved block by block.
    """

    solver: str = "highs"
    mip_gap: float = 0.01
    node_limit: int = 5000
    time_limit_s: float = 20.0
    threads: int = 1
    seed: int = 0
    sub_mip_heuristics: bool = False
    rounding_gap: float | None = None


def check_available(name: str) -> None:
    """Raise :class:`SolverUnavailableError` with an install hint if ``name`` is missing."""
    if name == "highs":
        try:
            import highspy  # noqa: F401
        except ImportError as exc:
            raise SolverUnavailableError(
                f"solver = 'highs': highspy is not installed; install it with: "
                f"{INSTALL_HINTS['highs']}"
            ) from exc
        return
    if name == "glpk":
        if shutil.which("glpsol") is None:
            raise SolverUnavailableError(
                f"solver = 'glpk': glpsol not found on PATH; install it with: "
                f"{INSTALL_HINTS['glpk']}"
            )
        return
    from pyomo.opt import SolverFactory

    try:
        available = SolverFactory(name).available(exception_flag=False)
    except Exception as exc:  # noqa: BLE001  (Pyomo plugins raise many kinds of errors)
        raise SolverUnavailableError(f"solver = {name!r}: unknown to Pyomo ({exc})") from exc
    if not available:
        hint = INSTALL_HINTS.get(name, "install the solver so that Pyomo can find it")
        raise SolverUnavailableError(f"solver = {name!r}: not available; {hint}")
