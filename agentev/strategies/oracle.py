"""``oracle``: one whole-run plan with perfect knowledge of the task trace.

The planner solves the whole run (every period of the run, the realised task demand of the
run's trace as its forecast) by relax-and-fix: the whole-run MILP, with every period's
plug-in decisions binary, is too large to solve in one piece (a light day stopped at a 300 s
limit with a worse plan than the rolling controller's), so blocks of ``ORACLE_BLOCK_H`` hours
are made binary and fixed in turn, each solve seeing the whole run. The plan is executed in
the simulator with the same seed, with the same booking mechanics and safety net as
``intelligent`` but no re-planning.
Its weighted objective is the reference of ``gap_to_offline_optimum``. The plan depends only
on the scenario, the seed and the solver options, so it is solved once and cached in memory
and on disk (``$AGENTEV_CACHE_DIR``, default ``~/.cache/agentev/oracle``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

import agentev
from agentev.agents.controller import TwinState
from agentev.optimization.controller import OptimizationController
from agentev.optimization.planner import FORMULATION_VERSION, Plan
from agentev.strategies.intelligent import Intelligent

#: Each relax-and-fix block's solve: the gap, and a longer safety net than a re-plan's.
ORACLE_MIP_GAP = 0.01
ORACLE_TIME_LIMIT_S = 120.0
#: Relax-and-fix block length (hours): 2 h took 25 s on a light day (8 vehicles x 96
#: periods), with a plan objective 3 % below 4 h blocks' and 11 % below 1 h blocks' at 2 % gap.
ORACLE_BLOCK_H = 2.0

_MEMO: dict[str, Plan] = {}


def cache_dir() -> Path:
    """Where oracle plans are cached."""
    root = os.environ.get("AGENTEV_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "agentev" / "oracle"


def _key(model, optimizer: OptimizationController) -> str:
    text = repr(
        (
            agentev.__version__,
            FORMULATION_VERSION,
            model.config,
            model.seed,
            optimizer.options,
            optimizer.binary_periods,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _load(path: Path) -> Plan | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            ports = [[tuple(p) if p else None for p in row] for row in meta["ports"]]
            return Plan(
                meta["status"],
                data["plugged"],
                data["grid_kwh"],
                data["energy_kwh"],
                ports,
                meta["terms"],
                meta["fallback"],
                meta["solve_s"],
                meta["message"],
            )
    except (OSError, KeyError, ValueError):
        return None  # no cache, or a damaged one: solve again


def _store(path: Path, plan: Plan) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "status": plan.status,
        "ports": [[list(p) if p else None for p in row] for row in plan.ports],
        "terms": plan.terms,
        "fallback": plan.fallback,
        "solve_s": plan.solve_s,
        "message": plan.message,
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        plugged=plan.plugged,
        grid_kwh=plan.grid_kwh,
        energy_kwh=plan.energy_kwh,
        meta=json.dumps(meta),
    )
    os.replace(tmp, path)


class Oracle(Intelligent):
    """Executes the whole-run perfect-knowledge plan (see the module docstring)."""

    name = "oracle"
    offline = True

    def __init__(self, model) -> None:
        super().__init__(model)
        c = model.config.controller
        whole = OptimizationController(
            prediction_horizon=model.duration_min / 60.0,
            optimization_interval=min(ORACLE_BLOCK_H, model.duration_min / 60.0),
            period_min=c.period_min,
            solver=c.solver,
            mip_gap=ORACLE_MIP_GAP,
            time_limit_s=ORACLE_TIME_LIMIT_S,
            forecaster="perfect",
            sub_mip_heuristics=True,
        )
        key = _key(model, whole)
        plan = _MEMO.get(key)
        path = cache_dir() / f"{key}.npz"
        if plan is None:
            plan = _load(path)
        if plan is None:
            whole.attach(model)
            plan = whole.plan(TwinState.observe(model), relax_and_fix=True)
            if plan.status in ("optimal", "feasible"):
                _store(path, plan)
        _MEMO[key] = plan
        self.replans.append(
            (
                0.0,
                "offline",
                plan.status,
                int(plan.fallback),
                plan.terms.get("objective", float("nan")),
                plan.solve_s * 1000.0,
                plan.message,
            )
        )
        self.apply(plan, 0.0)

    def replan(self, trigger: str) -> None:
        """The oracle never re-plans: its plan covers the whole run."""
