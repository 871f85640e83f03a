"""Parameter sweeps with ``mesa.batch_run``, and the Pareto view over the objective weights.

This is the only module of agentev that calls ``mesa.batch_run``. Mesa 4 removes
``batch_run``; the migration changes this file and nothing else.

* :func:`sweep` runs every combination of :class:`~agentev.model.FactoryModel` keyword
  values, ``replications`` times each. Replication ``k`` uses the seed ``seed + k`` for every
  combination, so at a given replication every combination gets the same task arrivals
  (common random numbers). The result is a tidy table with one row per run.
* :func:`weights_sweep` runs the controller under a set of objective weight triples
  ``(alpha_energy, alpha_downtime, alpha_utilization)`` (by default a simplex grid) and marks
  the weight triples whose mean energy cost and service shortfall are not dominated
  (:func:`pareto_front`).
* :func:`add_parser` and :func:`run_command` are the ``agentev sweep`` subcommand.

How the metrics get out of ``batch_run``: ``batch_run`` only returns the model reporters of
the model's DataCollector at its last collection. :class:`SweepModel` is a ``FactoryModel``
whose DataCollector has a single reporter, :func:`final_metrics`. While the run goes on the
reporter returns None. At the model's last step it returns every metric of
:data:`agentev.metrics.DEFINITIONS`, computed by :func:`agentev.outputs.model_metrics` from
the run's log. Plain ``FactoryModel`` runs are unchanged and pay nothing.

``batch_run`` sets the process-wide multiprocessing start method to ``spawn``.
:func:`sweep` puts the previous start method back afterwards. With ``number_processes > 1``,
call it from a script under ``if __name__ == "__main__":``, as ``spawn`` requires.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import math
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import mesa
import pandas as pd
from mesa import DataCollector

from agentev.config import ScenarioConfig
from agentev.metrics import DEFINITIONS
from agentev.model import FactoryModel
from agentev.outputs import model_metrics
from agentev.scenario import DEFAULT_SCENARIO, apply_overrides, load_scenario

#: The FactoryModel keyword parameters a sweep may set (everything but ``rng``).
MODEL_PARAMETERS: tuple[str, ...] = tuple(
    name for name in inspect.signature(FactoryModel).parameters if name != "rng"
)
#: The three objective weights, in the order of a weight triple.
WEIGHT_NAMES: tuple[str, str, str] = ("alpha_energy", "alpha_downtime", "alpha_utilization")
#: A sweep parameter that sets all three weights from one ``(energy, downtime, utilization)``
#: triple, so that weight triples (not a product of the three weights) can be swept.
WEIGHTS = "weights"
#: Every name :func:`sweep` accepts.
SWEEP_PARAMETERS: tuple[str, ...] = (*MODEL_PARAMETERS, WEIGHTS)
METRICS: tuple[str, ...] = tuple(DEFINITIONS)
#: ``energy_cost_adjusted + demand_charge``: the cost axis of the weights' Pareto front.
ENERGY_COST_TOTAL = "energy_cost_total"
SHORTFALL = "service_shortfall_vehicle_h"


# ----------------------------------------------------------------------------- the model
def final_metrics(model: FactoryModel) -> dict[str, float] | None:
    """Every metric of the run at its last step; None before (a DataCollector reporter).

    Module level so that the model can be pickled for ``number_processes > 1``. It checks the
    same end condition as ``FactoryModel.step`` (the step at ``duration_min``). That step
    collects its data before it sets ``running`` to False, so ``running`` cannot be used here.
    """
    if model.time < model.duration_min:
        return None
    return {name: metric.value for name, metric in model_metrics(model).items()}


class SweepModel(FactoryModel):
    """A FactoryModel that reports every metric once, at the end of its run, for batch_run.

    Its DataCollector has only :func:`final_metrics`, so it does less per step than a plain
    FactoryModel (which collects seven reporters every minute).

    Args:
        *args: As :class:`FactoryModel`.
        weights: ``(alpha_energy, alpha_downtime, alpha_utilization)``, the objective weights
            at once; None keeps the keywords' (or the scenario's) values.
        **kwargs: As :class:`FactoryModel`.
    """

    def __init__(self, *args: Any, weights: Sequence[float] | None = None, **kwargs: Any) -> None:
        if weights is not None:
            kwargs.update(zip(WEIGHT_NAMES, weights, strict=True))
        super().__init__(*args, **kwargs)
        self.datacollector = DataCollector(model_reporters={"metrics": final_metrics})


# ----------------------------------------------------------------------------- validation
def check_parameter_names(
    names: Iterable[str], values: Mapping[str, Any], source: str = "sweep: parameter"
) -> None:
    """Raise ValueError for a name :func:`sweep` does not accept.

    Args:
        names: Parameter names to check.
        values: The values given, for the message.
        source: How the message names where the parameter came from.

    Raises:
        ValueError: naming the field, its value and the allowed names.
    """
    for name in names:
        if name not in SWEEP_PARAMETERS:
            hint = " (set seeds with seed= and replications=)" if name in ("rng", "seed") else ""
            raise ValueError(
                f"{source} {name} = {values.get(name)!r}: unknown parameter{hint}; allowed: "
                f"{', '.join(SWEEP_PARAMETERS)}"
            )


def _check_count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"sweep: {name} = {value!r}: must be an integer >= {low}")
    return int(value)


def _is_triple(value: Any) -> bool:
    """Whether ``value`` is one weight triple (three numbers) rather than a list of triples."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        return False
    items = list(value)
    return len(items) == 3 and all(isinstance(w, Real) and not isinstance(w, bool) for w in items)


def check_weights(weights: Iterable[Iterable[float]]) -> list[tuple[float, float, float]]:
    """Validate weight triples ``(alpha_energy, alpha_downtime, alpha_utilization)``.

    Args:
        weights: The triples; each weight finite and >= 0, each triple's sum > 0.

    Returns:
        The triples as tuples of floats, in the order given.

    Raises:
        ValueError: naming the bad triple and what is allowed.
    """
    allowed = (
        "must be 3 finite numbers (alpha_energy, alpha_downtime, alpha_utilization), each >= 0, "
        "with a sum > 0"
    )
    if isinstance(weights, str) or not isinstance(weights, Iterable):
        raise ValueError(
            f"weights = {weights!r}: expected a list of weight triples; each {allowed}"
        )
    out: list[tuple[float, float, float]] = []
    for triple in weights:
        if not _is_triple(triple):
            raise ValueError(f"weights: {triple!r}: {allowed}")
        e, d, u = (float(w) for w in triple)
        values = (e, d, u)
        if not all(math.isfinite(w) and w >= 0.0 for w in values) or sum(values) <= 0.0:
            raise ValueError(f"weights: {triple!r}: {allowed}")
        if values in out:
            raise ValueError(f"weights: {triple!r}: given twice; give each triple once")
        out.append(values)
    if not out:
        raise ValueError("weights: []: give at least one weight triple")
    return out


def simplex_weights(step: float = 0.25) -> list[tuple[float, float, float]]:
    """The weight triples on a grid of ``step`` that sum to 1 (15 for 0.25).

    Args:
        step: Grid step; 1 / step must be a whole number.

    Returns:
        ``(alpha_energy, alpha_downtime, alpha_utilization)`` triples, alpha_energy rising.
    """
    n = round(1.0 / step) if step > 0 else 0
    if n < 1 or not math.isclose(n * step, 1.0):
        raise ValueError(f"weights: step = {step!r}: 1 / step must be a whole number >= 1")
    return [(i / n, j / n, (n - i - j) / n) for i in range(n + 1) for j in range(n + 1 - i)]


def _as_values(name: str, value: Any) -> list[Any]:
    """A parameter's values: a single value becomes a one-element list."""
    if isinstance(value, Iterator):
        value = list(value)
    if name == WEIGHTS:
        # One triple of numbers, or a list of triples.
        return list(check_weights([value] if _is_triple(value) else value))
    if isinstance(value, str | bytes | os.PathLike | ScenarioConfig) or not isinstance(
        value, Iterable
    ):
        return [value]
    values = list(value)
    if not values:
        raise ValueError(f"sweep: parameter {name} = {value!r}: empty; give at least one value")
    return values


def _duration_min(combination: Mapping[str, Any], cache: dict[Any, ScenarioConfig]) -> int:
    """Validate one combination's values (ScenarioError) and return its run length (min)."""
    kwargs = dict(combination)
    scenario = kwargs.pop("scenario", DEFAULT_SCENARIO)
    weights = kwargs.pop(WEIGHTS, None)
    if weights is not None:
        kwargs.update(zip(WEIGHT_NAMES, weights, strict=True))
    key = id(scenario) if isinstance(scenario, ScenarioConfig) else str(scenario)
    if key not in cache:
        cache[key] = scenario if isinstance(scenario, ScenarioConfig) else load_scenario(scenario)
    cfg = apply_overrides(cache[key], **kwargs)
    return int(round(cfg.duration_h * 60))


def _column_value(value: Any) -> Any:
    if isinstance(value, ScenarioConfig):
        return value.name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _rank(values: list[Any], value: Any) -> int:
    """Position of ``value`` among ``values`` sorted (given order if they do not sort)."""
    try:
        ordered = sorted(values)
    except TypeError:
        ordered = values
    return ordered.index(value)


# ----------------------------------------------------------------------------- sweeps
def sweep(
    parameters: Mapping[str, Any],
    replications: int = 1,
    seed: int = 0,
    number_processes: int = 1,
) -> pd.DataFrame:
    """Run every combination of parameter values ``replications`` times with mesa.batch_run.

    Args:
        parameters: FactoryModel keyword name to a value or a list of values, e.g.
            ``{"scenario": "light", "strategy": ["fcfs", "negotiation"],
            "num_vehicles": [6, 8], "duration_h": 4}``. ``weights`` sets the three objective
            weights from one ``(alpha_energy, alpha_downtime, alpha_utilization)`` triple or
            a list of triples. It gives the columns ``alpha_energy``, ``alpha_downtime`` and
            ``alpha_utilization``.
        replications: Runs per combination; replication ``k`` uses the seed ``seed + k``.
        seed: Seed of replication 0 (>= 0).
        number_processes: Worker processes of ``batch_run`` (1 runs in this process).

    Returns:
        One row per run, sorted by the parameter values (in the order of ``parameters``) and
        then the replication. Columns: the parameter names, ``replication``, ``seed``, then
        every metric of :data:`~agentev.metrics.DEFINITIONS`, computed from the run's log.
        The same call returns the same table.

    Raises:
        ValueError: an unknown parameter name, an empty value list or a bad count. A bad
            value raises :class:`~agentev.scenario.ScenarioError`, a ValueError. Both are
            raised before any run starts.
    """
    check_parameter_names(parameters, parameters)
    replications = _check_count(replications, "replications", 1)
    seed = _check_count(seed, "seed", 0)
    number_processes = _check_count(number_processes, "number_processes", 1)
    if WEIGHTS in parameters and any(name in parameters for name in WEIGHT_NAMES):
        given = [name for name in WEIGHT_NAMES if name in parameters]
        raise ValueError(
            f"sweep: parameter weights = {parameters[WEIGHTS]!r}: cannot be combined with "
            f"{', '.join(given)}; give either weights or the alpha_* parameters"
        )
    grid = {name: _as_values(name, value) for name, value in parameters.items()}
    cache: dict[Any, ScenarioConfig] = {}
    max_steps = max(
        _duration_min(dict(zip(grid, combo, strict=True)), cache)
        for combo in itertools.product(*grid.values())
    )

    previous = multiprocessing.get_start_method(allow_none=True)
    try:
        rows = mesa.batch_run(
            SweepModel,
            parameters=grid,
            rng=[seed + k for k in range(replications)],
            # The model stops itself at its duration; this bound is reached by the longest.
            max_steps=max(1, max_steps),
            number_processes=number_processes,
            data_collection_period=-1,
            display_progress=False,
        )
    finally:
        multiprocessing.set_start_method(previous, force=True)

    expected = replications * math.prod(len(v) for v in grid.values())
    if len(rows) != expected or any(row.get("metrics") is None for row in rows):
        raise RuntimeError(
            f"sweep: batch_run returned {len(rows)} rows for {expected} runs, or a run that did "
            "not reach its end; every run must step to its duration"
        )
    rows.sort(
        key=lambda row: (
            *(_rank(grid[name], row[name]) for name in grid),
            row["iteration"],
        )
    )
    records = []
    for row in rows:
        record: dict[str, Any] = {}
        for name in grid:
            if name == WEIGHTS:
                record.update(zip(WEIGHT_NAMES, row[name], strict=True))
            else:
                record[name] = _column_value(row[name])
        record["replication"] = row["iteration"]
        record["seed"] = row["rng"]
        record.update((name, row["metrics"][name]) for name in METRICS)
        records.append(record)
    return pd.DataFrame.from_records(records)


def pareto_front(
    points: pd.DataFrame,
    cost: str = ENERGY_COST_TOTAL,
    shortfall: str = SHORTFALL,
) -> pd.Series:
    """Which rows are not dominated when minimising both ``cost`` and ``shortfall``.

    A row is dominated if another row is no worse in both columns and better in one. Equal
    rows do not dominate each other: every copy of a front point is on the front. Rows with a
    missing value are not on the front and dominate nothing.

    Args:
        points: A table with the two columns.
        cost: Cost column (currency).
        shortfall: Service shortfall column (vehicle-h).

    Returns:
        Boolean Series named ``pareto``, indexed like ``points``.
    """
    for column in (cost, shortfall):
        if column not in points.columns:
            raise ValueError(
                f"pareto_front: column {column!r} not in the table; columns: "
                f"{', '.join(map(str, points.columns))}"
            )
    x = points[cost].to_numpy(dtype=float)
    y = points[shortfall].to_numpy(dtype=float)
    on_front = [False] * len(points)
    valid = sorted(
        (i for i in range(len(points)) if not (math.isnan(x[i]) or math.isnan(y[i]))),
        key=lambda i: (x[i], y[i]),
    )
    # Sweep by rising cost. A point is on the front if its shortfall is the lowest among the
    # points of its cost and lower than every point of a smaller cost.
    best_before = math.inf
    for _, group in itertools.groupby(valid, key=lambda i: x[i]):
        members = list(group)
        lowest = y[members[0]]
        if lowest < best_before:
            for i in members:
                on_front[i] = y[i] == lowest
        best_before = min(best_before, lowest)
    return pd.Series(on_front, index=points.index, name="pareto", dtype=bool)


def weights_sweep(
    scenario: str = "light",
    strategy: str = "intelligent",
    weights: Sequence[tuple[float, float, float]] | None = None,
    replications: int = 1,
    seed: int = 0,
    duration_h: float | None = None,
    number_processes: int = 1,
    parameters: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Run the controller under each objective weight triple; mark the Pareto front.

    All triples and replications are run by one :func:`sweep` (one ``batch_run``), so
    ``number_processes`` spreads the triples over the workers.

    Args:
        scenario: Scenario name or TOML path.
        strategy: A strategy that uses the weights (``intelligent`` or ``hindsight``).
        weights: ``(alpha_energy, alpha_downtime, alpha_utilization)`` triples, each weight
            >= 0 with a sum > 0; None: :func:`simplex_weights` with step 0.25 (15 triples).
        replications: Runs per triple, seeds ``seed + k``.
        seed: Seed of replication 0.
        duration_h: Simulated time (hours); None: the scenario's.
        number_processes: Worker processes of ``batch_run``.
        parameters: Other FactoryModel keywords, single values (e.g. ``num_vehicles``).

    Returns:
        One row per triple, in the order given: ``alpha_energy``, ``alpha_downtime``,
        ``alpha_utilization``, ``n`` (runs), ``energy_cost_total`` (mean over runs of
        ``energy_cost_adjusted + demand_charge``), ``service_shortfall_vehicle_h`` (mean),
        the means of the other metrics, and ``pareto`` (:func:`pareto_front` of the two).

    Raises:
        ValueError: a bad weight triple or parameter, before anything runs.
    """
    triples = check_weights(weights if weights is not None else simplex_weights(0.25))
    extra = dict(parameters or {})
    check_parameter_names(extra, extra, source="weights_sweep: parameter")
    for name, value in extra.items():
        if name in ("scenario", "strategy", "duration_h", WEIGHTS, *WEIGHT_NAMES):
            raise ValueError(
                f"weights_sweep: parameter {name} = {value!r}: set by weights_sweep's own "
                "arguments; give it there"
            )
        if len(_as_values(name, value)) != 1:
            raise ValueError(
                f"weights_sweep: parameter {name} = {value!r}: give a single value (one row "
                "per weight triple)"
            )
    grid: dict[str, Any] = {"scenario": scenario, "strategy": strategy, **extra}
    if duration_h is not None:
        grid["duration_h"] = duration_h
    grid[WEIGHTS] = triples
    runs = sweep(grid, replications=replications, seed=seed, number_processes=number_processes)
    runs[ENERGY_COST_TOTAL] = runs["energy_cost_adjusted"] + runs["demand_charge"]

    metrics = [ENERGY_COST_TOTAL, SHORTFALL, *(m for m in METRICS if m != SHORTFALL)]
    grouped = runs.groupby(list(WEIGHT_NAMES), sort=False)
    table = grouped[metrics].mean()
    table.insert(0, "n", grouped.size())
    table = table.reindex(pd.MultiIndex.from_tuples(triples, names=WEIGHT_NAMES)).reset_index()
    table["pareto"] = pareto_front(table)
    return table


# ----------------------------------------------------------------------------- command line
def add_parser(subparsers: Any) -> None:
    """Add the ``sweep`` subcommand to an ``argparse`` subparsers object.

    Args:
        subparsers: The result of ``ArgumentParser.add_subparsers()``.
    """
    p = subparsers.add_parser(
        "sweep",
        help="parameter sweep with mesa.batch_run, or the objective weights' Pareto front",
        description="Run every combination of the --param values (x strategies x "
        "replications) and write sweep.csv; with --weights, run the objective weight simplex "
        "grid and write pareto.csv.",
    )
    p.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help=f"built-in scenario or a .toml file (default: {DEFAULT_SCENARIO})",
    )
    p.add_argument(
        "--strategy",
        default=None,
        help="strategy, or a comma list to sweep (default: fcfs; intelligent with --weights)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a FactoryModel parameter and its values, e.g. num_vehicles=6,8 (repeatable; "
        "values are read as int, else float, else text)",
    )
    p.add_argument("--replications", type=int, default=1, help="runs per combination (1)")
    p.add_argument("--seed", type=int, default=0, help="seed of replication 0 (default: 0)")
    p.add_argument(
        "--hours", type=float, default=None, help="simulated hours (default: the scenario's)"
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument(
        "--weights",
        action="store_true",
        help="run the weight simplex grid (step 0.25) and write its Pareto front",
    )
    p.add_argument(
        "--output-dir",
        default="results/sweep",
        help="output directory (default: results/sweep)",
    )


def parse_value(text: str) -> int | float | str:
    """A command-line value: int if it reads as one, else float, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


#: Parameters with their own option of ``agentev sweep``.
_OWN_OPTIONS = {"scenario": "--scenario", "strategy": "--strategy", WEIGHTS: "--weights"}


def parse_params(items: Sequence[str]) -> dict[str, list[int | float | str]]:
    """Parse ``--param NAME=V1,V2,...`` options into a parameter grid.

    Args:
        items: The option values.

    Returns:
        Name to list of values, in the order given.

    Raises:
        ValueError: naming ``--param``, the value and what is allowed.
    """
    grid: dict[str, list[int | float | str]] = {}
    allowed = [n for n in SWEEP_PARAMETERS if n not in _OWN_OPTIONS]
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        parts = [v.strip() for v in values.split(",")]
        if not sep or not name or not all(parts):
            raise ValueError(
                f"--param {item!r}: expected NAME=V1,V2,... (e.g. num_vehicles=6,8), "
                "no empty name or value"
            )
        if name in _OWN_OPTIONS:
            raise ValueError(f"--param {item!r}: use the option {_OWN_OPTIONS[name]} for {name}")
        if name not in allowed:
            raise ValueError(
                f"--param {item!r}: unknown parameter {name!r}; allowed: {', '.join(allowed)}"
            )
        if name in grid:
            raise ValueError(f"--param {item!r}: {name} given twice; give its values once")
        grid[name] = [parse_value(v) for v in parts]
    return grid


def _check_option(value: int, option: str, low: int) -> None:
    if value < low:
        raise ValueError(f"{option} = {value!r}: must be an integer >= {low}")


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` to ``path`` atomically (``.tmp`` then rename), floats at full precision.

    Args:
        table: The table.
        path: The CSV file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, path)


def _summary(table: pd.DataFrame, keys: list[str]) -> str:
    shown = [c for c in keys if c in table.columns]
    return table[shown].to_string(index=False, float_format=lambda v: f"{v:.4g}")


def run_command(args: argparse.Namespace) -> int:
    """Run ``agentev sweep``: write ``sweep.csv`` (or ``pareto.csv``), print a summary.

    Args:
        args: Parsed options of the parser :func:`add_parser` adds.

    Returns:
        0.

    Raises:
        ValueError: a bad option value, naming the option, the value and what is allowed
            (the caller turns it into exit code 2).
    """
    _check_option(args.replications, "--replications", 1)
    _check_option(args.seed, "--seed", 0)
    _check_option(args.workers, "--workers", 1)
    params = parse_params(args.param)
    if args.hours is not None and "duration_h" in params:
        raise ValueError(
            f"--param duration_h={','.join(map(str, params['duration_h']))}: --hours also sets "
            "duration_h; give one of them"
        )
    default_strategy = "intelligent" if args.weights else "fcfs"
    text = args.strategy if args.strategy is not None else default_strategy
    strategies = [s.strip() for s in text.split(",")]
    if not all(strategies):
        raise ValueError(f"--strategy {text!r}: expected a strategy or a comma list of them")
    out_dir = Path(args.output_dir)

    if args.weights:
        if len(strategies) != 1:
            raise ValueError(f"--strategy {text!r}: --weights takes a single strategy")
        for name, values in params.items():
            if len(values) != 1:
                raise ValueError(
                    f"--param {name}={','.join(map(str, values))}: with --weights give a "
                    "single value (one row per weight triple)"
                )
        table = weights_sweep(
            scenario=args.scenario,
            strategy=strategies[0],
            replications=args.replications,
            seed=args.seed,
            duration_h=args.hours,
            number_processes=args.workers,
            parameters={name: values[0] for name, values in params.items()},
        )
        path = out_dir / "pareto.csv"
        keys = [*WEIGHT_NAMES, "n", ENERGY_COST_TOTAL, SHORTFALL, "weighted_objective", "pareto"]
    else:
        grid: dict[str, Any] = {"scenario": args.scenario, "strategy": strategies, **params}
        if args.hours is not None:
            grid["duration_h"] = args.hours
        table = sweep(
            grid, replications=args.replications, seed=args.seed, number_processes=args.workers
        )
        path = out_dir / "sweep.csv"
        keys = [
            "strategy",
            *params,
            "replication",
            "total_cost",
            SHORTFALL,
            "completion_ratio",
            "charger_utilization",
        ]
    write_csv(table, path)
    print(_summary(table, keys))
    print(f"{len(table)} rows written to {path}")
    return 0
