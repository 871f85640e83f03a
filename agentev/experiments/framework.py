"""ExperimentalFramework: scenarios x strategies x replications, resumable, in parallel.

A campaign runs every scenario under every strategy, ``num_replications`` times. Replication
``k`` of every strategy uses the seed ``base_seed + k``: the same task arrivals (common random
numbers), so strategies are compared pair by pair. Runs execute on a local process pool or a
Dask cluster (:mod:`agentev.experiments.backends`); workers return results and this process
writes every file:

* ``checkpoints/<key>.json``: each finished run, atomically (:mod:`.checkpoint`); running the
  same campaign again resumes from them, never redoing a finished run;
* ``checkpoint.json``: the progress summary, after every finished run (``agentev monitor``);
* ``campaign.json``: the campaign's configuration;
* ``runs.csv``: the tidy per-run table, one row per scenario x strategy x replication, keyed
  by ``scenario, strategy, replication, seed``, then every metric of
  :data:`agentev.metrics.DEFINITIONS` and of :data:`agentev.metrics.REFERENCE_DEFINITIONS`:
  every run's ``cheapest_bill``, ``lower_bound_objective`` and ``gap_to_lower_bound``, and,
  from the ``fcfs`` and ``hindsight`` runs of the same scenario and replication when the
  campaign has them, ``possible_saving``, ``savings_captured`` and
  ``gap_to_hindsight_plan``. No wall-clock,
  timestamp or host column: an interrupted and resumed campaign writes the same bytes as an
  uninterrupted one;
* ``traces.parquet``: per-minute fleet SoC, site power, price and occupied ports of
  replication 0 (for the report's figures); ``timing.csv``: wall-clock and solver seconds
  per run (for benchmarks, not results).

Example::

    from agentev import ExperimentalFramework

    framework = ExperimentalFramework(output_dir="results")
    runs = framework.run_comprehensive_experiments(
        num_replications=30, scenarios=["light", "heavy"], strategies=["fcfs", "intelligent"]
    )
    framework.generate_reports()
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

import agentev
from agentev.experiments.backends import Backend
from agentev.experiments.checkpoint import CheckpointStore, RunSpec, run_key, write_atomic
from agentev.experiments.sweep import MODEL_PARAMETERS
from agentev.metrics import DEFINITIONS, REFERENCE_DEFINITIONS
from agentev.scenario import ScenarioError, load_scenario
from agentev.strategies import STRATEGIES, strategy_name

DEFAULT_SCENARIOS = ("light", "heavy", "flexible", "continuous")
DEFAULT_STRATEGIES = tuple(STRATEGIES)
#: Replication ``k`` runs with seed ``BASE_SEED + k`` (the seed's ``RANDOM_SEED``).
BASE_SEED = 42
KEY_COLUMNS = ("scenario", "strategy", "replication", "seed")
METRIC_COLUMNS = (*DEFINITIONS, *REFERENCE_DEFINITIONS)
TRACE_COLUMNS = (
    "time_min",
    "soc_mean",
    "soc_min",
    "soc_max",
    "site_power_kw",
    "price_per_kwh",
    "ports_occupied",
    "num_ports",
)


class CampaignError(RuntimeError):
    """Some runs of a campaign failed; the others are stored and a rerun retries these."""


# ----------------------------------------------------------------- one run (in a worker)
def traces_of(model) -> dict[str, list]:
    """Per-minute fleet traces of a finished run (columns of :data:`TRACE_COLUMNS`)."""
    rec = model.recorder
    ts = rec.timeseries()
    grid = rec.grid()
    by_t = ts.groupby("time_min", sort=True)
    soc = by_t["soc"].agg(["mean", "min", "max"])
    plugged = by_t["charger_id"].agg(lambda s: int(s.notna().sum()))
    frame = pd.DataFrame(
        {
            "time_min": grid["time_min"].to_numpy(dtype=float),
            "soc_mean": soc["mean"].reindex(grid["time_min"]).to_numpy(dtype=float),
            "soc_min": soc["min"].reindex(grid["time_min"]).to_numpy(dtype=float),
            "soc_max": soc["max"].reindex(grid["time_min"]).to_numpy(dtype=float),
            "site_power_kw": grid["site_power_kw"].to_numpy(dtype=float),
            "price_per_kwh": grid["price_per_kwh"].to_numpy(dtype=float),
            "ports_occupied": plugged.reindex(grid["time_min"]).fillna(0).to_numpy(dtype=int),
            "num_ports": np.full(len(grid), model.num_ports, dtype=int),
        }
    )
    return {c: frame[c].tolist() for c in TRACE_COLUMNS}


def execute_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one :class:`RunSpec` (as a dict) and return its result (plain data).

    The result: ``metrics`` (name -> value), ``traces`` (replication 0 only, else None),
    ``wall_s`` and ``solver_s`` (seconds; the controller's solves), and ``version``.
    """
    from agentev.metrics import References
    from agentev.model import FactoryModel
    from agentev.optimization.bound import lower_bound
    from agentev.outputs import model_metrics

    run = RunSpec.from_dict(spec)
    start = time.perf_counter()
    model = FactoryModel(**run.model_kwargs())
    model.run()
    # the lower bound is shared by every strategy of a scenario and seed (cached on disk);
    # the fcfs and hindsight references come from the other runs (stats.fill_gaps)
    refs = References(lower_bound_objective=lower_bound(model).objective)
    metrics = {
        name: float(m.value) for name, m in model_metrics(model, refs, cheapest=True).items()
    }
    replans = getattr(model.strategy, "replans", None) or []
    return {
        "metrics": metrics,
        "traces": traces_of(model) if run.replication == 0 else None,
        "wall_s": time.perf_counter() - start,
        "solver_s": float(sum(r[5] for r in replans)) / 1000.0,
        "version": agentev.__version__,
    }


# ----------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar with rate and ETA on a terminal stream."""

    def __init__(self, total: int, done: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.start_done = total, done, done
        self.start = time.time()
        self.stream = stream

    def rate_per_min(self) -> float:
        """Runs finished per minute in this session."""
        elapsed = time.time() - self.start
        return (self.done - self.start_done) / elapsed * 60.0 if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        """Seconds until the campaign ends at the current rate (None before the first run)."""
        rate = self.rate_per_min()
        return (self.total - self.done) / rate * 60.0 if rate > 0 else None

    def advance(self, label: str = "") -> None:
        """One more run finished: redraw."""
        self.done += 1
        self.draw(label)

    def draw(self, label: str = "") -> None:
        """Write the bar (carriage return on a terminal, a line otherwise)."""
        if self.stream is None:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} runs  "
            f"{self.rate_per_min():.1f} runs/min  ETA {format_duration(self.eta_s())}  {label}"
        )
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.stream.write(("\r" + line.ljust(100)) if tty else line + "\n")
        if tty and self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()

    def summary(self) -> dict[str, Any]:
        """Progress fields of the checkpoint summary."""
        return {
            "done": self.done,
            "total": self.total,
            "session_start_unix": self.start,
            "session_done_at_start": self.start_done,
            "updated_unix": time.time(),
            "rate_runs_per_min": self.rate_per_min(),
            "eta_s": self.eta_s(),
        }


def format_duration(seconds: float | None) -> str:
    """``1h02m03s`` style, or ``--`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# ----------------------------------------------------------------- the framework
class ExperimentalFramework:
    """Runs experiment campaigns, checkpoints them, and reports their statistics.

    Args:
        output_dir: Where every file of the campaign is written.
        enable_checkpoints: Store each finished run and resume from stored runs.
        workers: Local worker processes (default: one per core).
        scheduler: Dask scheduler address (``tcp://HOST:8786``) or ``distributed.Client``
            to run on a cluster instead of the local pool.
        base_seed: Replication ``k`` uses seed ``base_seed + k``.
        progress: Show a progress bar on standard error.
    """

    def __init__(
        self,
        output_dir: str | Path = "results",
        enable_checkpoints: bool = True,
        workers: int | None = None,
        scheduler: Any = None,
        base_seed: int = BASE_SEED,
        progress: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.enable_checkpoints = enable_checkpoints
        self.workers = workers
        self.scheduler = scheduler
        self.base_seed = _check_int(base_seed, "base_seed", 0)
        self.progress_stream = sys.stderr if progress else None
        self.store = CheckpointStore(self.output_dir)
        self.config: dict[str, Any] | None = None
        self.runs: pd.DataFrame | None = None
        self.traces: pd.DataFrame | None = None
        self._progress: Progress | None = None
        self._results: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write the checkpoint summary (progress of the current campaign) now."""
        done = self._progress.summary() if self._progress else {}
        return self.store.write_summary(
            {
                "agentev_version": agentev.__version__,
                "output_dir": str(self.output_dir),
                "config": self.config,
                "checkpoints": self.store.count(),
                **done,
            }
        )

    def load_checkpoint(self) -> dict[str, dict[str, Any]]:
        """Load every valid stored run (corrupt files are reported and removed).

        Returns:
            Stored records by run key (``spec`` and ``result``).
        """
        records = self.store.load() if self.enable_checkpoints else {}
        self._results.update({k: r["result"] for k, r in records.items()})
        return records

    # ------------------------------------------------------------- running
    def run_single_simulation(
        self,
        scenario: str = "light",
        strategy: str = "fcfs",
        seed: int = BASE_SEED,
        simulation_time: float | None = None,
        replication: int = 0,
        **params: Any,
    ) -> dict[str, Any]:
        """Run one simulation (or take it from its checkpoint) and return its row.

        Args:
            scenario: Built-in scenario name or scenario file.
            strategy: Charging strategy.
            seed: The model's seed.
            simulation_time: Simulated hours (default: the scenario's duration).
            replication: Replication number recorded in the row.
            **params: Other :class:`~agentev.model.FactoryModel` keywords.

        Returns:
            ``scenario, strategy, replication, seed`` and every metric.
        """
        spec = self._specs([scenario], [strategy], [replication], simulation_time, params, seed)
        result = self._run_here(spec[0])
        return _row(spec[0], result)

    def _run_here(self, spec: RunSpec) -> dict[str, Any]:
        key = run_key(spec)
        if self.enable_checkpoints:
            stored = self.store.get(key)
            if stored is not None:
                return stored["result"]
        result = execute_run(spec.to_dict())
        if self.enable_checkpoints:
            self.store.save(key, spec, result)
        return result

    def _specs(
        self,
        scenarios: Iterable[str],
        strategies: Iterable[str],
        replications: Iterable[int],
        hours: float | None,
        params: Mapping[str, Any],
        seed0: int | None = None,
    ) -> list[RunSpec]:
        """Validated run specifications, replication-major (a cut campaign stays paired)."""
        scenarios, strategies = list(scenarios), list(strategies)
        for name in scenarios:
            try:
                load_scenario(name)
            except ScenarioError as exc:
                raise ValueError(f"scenarios: {exc}") from exc
        strategies = [strategy_name(name) for name in strategies]
        for name in strategies:
            if name not in STRATEGIES:
                raise ValueError(
                    f"strategies = {name!r}: unknown strategy; allowed: {', '.join(STRATEGIES)}"
                )
        if hours is not None and not (isinstance(hours, int | float) and hours > 0):
            raise ValueError(f"simulation_time = {hours!r}: must be a number of hours > 0")
        allowed = sorted(set(MODEL_PARAMETERS) - {"scenario", "strategy", "duration_h"})
        for name in params:
            if name not in allowed:
                raise ValueError(
                    f"parameter {name!r} = {params[name]!r}: not a model parameter; allowed: "
                    f"{', '.join(allowed)}"
                )
        hours = None if hours is None else float(hours)
        out = []
        for k in replications:
            seed = (self.base_seed + k) if seed0 is None else seed0
            for scenario in scenarios:
                for strategy in strategies:
                    out.append(RunSpec(scenario, strategy, k, seed, hours, dict(params)))
        return out

    def run_comprehensive_experiments(
        self,
        num_replications: int = 30,
        scenarios: Sequence[str] | None = None,
        strategies: Sequence[str] | None = None,
        simulation_time: float | None = None,
        **params: Any,
    ) -> pd.DataFrame:
        """Run (or resume) a campaign and write its per-run table ``runs.csv``.

        Args:
            num_replications: Replications per scenario and strategy.
            scenarios: Scenario names or files (default: the four built-in ones).
            strategies: Strategy names (default: every registered strategy).
            simulation_time: Simulated hours per run (default: each scenario's duration).
            **params: :class:`~agentev.model.FactoryModel` keyword overrides for every run.

        Returns:
            The runs table (as written to ``runs.csv``).

        Raises:
            ValueError: a bad scenario, strategy or parameter (before anything runs).
            CampaignError: some runs failed (the others are stored; rerun to retry).
        """
        n = _check_int(num_replications, "num_replications", 1)
        scenarios = list(scenarios or DEFAULT_SCENARIOS)
        strategies = [strategy_name(s) for s in (strategies or DEFAULT_STRATEGIES)]
        specs = self._specs(scenarios, strategies, range(n), simulation_time, params)
        self.config = {
            "agentev_version": agentev.__version__,
            "scenarios": scenarios,
            "strategies": strategies,
            "num_replications": n,
            "simulation_time_h": None if simulation_time is None else float(simulation_time),
            "base_seed": self.base_seed,
            "seeds": [self.base_seed + k for k in range(n)],
            "parameters": dict(sorted(params.items())),
        }
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output_dir / "campaign.json", json.dumps(self.config, indent=2) + "\n")
        keys = [run_key(s) for s in specs]
        self._results = {}
        stored = self.load_checkpoint()
        pending = [(k, s) for k, s in zip(keys, specs, strict=True) if k not in self._results]
        pending = list(dict(pending).items())  # one run per key
        self._progress = Progress(
            len(set(keys)), len(set(keys)) - len(pending), self.progress_stream
        )
        if stored and pending and self.progress_stream is not None:
            self.progress_stream.write(
                f"resuming: {len(set(keys)) - len(pending)} runs from checkpoints\n"
            )
        self.save_checkpoint()
        failures = self._execute(pending)
        self.save_checkpoint()
        self._write_tables(specs, keys)
        if failures:
            write_atomic(self.output_dir / "failures.json", json.dumps(failures, indent=2) + "\n")
            raise CampaignError(
                f"{len(failures)} of {len(set(keys))} runs failed (see "
                f"{self.output_dir / 'failures.json'}); the others are stored, run again "
                f"to retry. First: {failures[0]['spec']}: {failures[0]['error']}"
            )
        return self.runs

    def _execute(self, pending: list[tuple[str, RunSpec]]) -> list[dict[str, Any]]:
        """Run the pending specs on the backend; store each result as it arrives."""
        failures: list[dict[str, Any]] = []
        if not pending:
            return failures
        with Backend(self.workers, self.scheduler) as backend:
            futures = {
                backend.executor.submit(execute_run, spec.to_dict()): (key, spec)
                for key, spec in pending
            }
            for future in as_completed(futures):
                key, spec = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - report, keep the other runs
                    failures.append({"spec": spec.to_dict(), "error": repr(exc)})
                    continue
                if result.get("version") != agentev.__version__:
                    failures.append(
                        {
                            "spec": spec.to_dict(),
                            "error": f"worker ran agentev {result.get('version')}",
                        }
                    )
                    continue
                if self.enable_checkpoints:
                    self.store.save(key, spec, result)
                self._results[key] = result
                self._progress.advance(f"{spec.scenario}/{spec.strategy}/{spec.replication}")
                self.save_checkpoint()
        return failures

    def _write_tables(self, specs: list[RunSpec], keys: list[str]) -> None:
        """``runs.csv``, ``traces.parquet`` and ``timing.csv`` from the stored results."""
        from agentev.experiments.stats import fill_gaps

        rows, traces, timing = [], [], []
        for spec, key in zip(specs, keys, strict=True):
            result = self._results.get(key)
            if result is None:
                continue
            rows.append(_row(spec, result))
            timing.append(
                {
                    **{c: getattr(spec, c) for c in KEY_COLUMNS},
                    "wall_s": result["wall_s"],
                    "solver_s": result["solver_s"],
                }
            )
            if result.get("traces"):
                frame = pd.DataFrame(result["traces"], columns=list(TRACE_COLUMNS))
                for c in ("scenario", "strategy", "replication"):
                    frame.insert(0, c, getattr(spec, c))
                traces.append(frame[["scenario", "strategy", "replication", *TRACE_COLUMNS]])
        order = {"scenario": self.config["scenarios"], "strategy": self.config["strategies"]}
        runs = pd.DataFrame(rows, columns=[*KEY_COLUMNS, *METRIC_COLUMNS])
        runs = fill_gaps(runs)
        runs = _sorted(runs, order)
        self.runs = runs
        write_atomic(self.output_dir / "runs.csv", runs.to_csv(index=False, lineterminator="\n"))
        write_atomic(
            self.output_dir / "timing.csv",
            _sorted(pd.DataFrame(timing), order).to_csv(index=False, lineterminator="\n"),
        )
        self.traces = _sorted(pd.concat(traces), order) if traces else None
        if self.traces is not None:
            tmp = self.output_dir / "traces.parquet.tmp"
            self.traces.to_parquet(tmp, index=False)
            tmp.replace(self.output_dir / "traces.parquet")

    # ------------------------------------------------------------- reports
    def generate_reports(self, baseline: str = "fcfs") -> dict[str, Path]:
        """Statistics, figures and the report of the campaign in ``output_dir``.

        Reads ``runs.csv`` (and ``traces.parquet``, ``pareto.csv`` when present) if this
        framework has not just run the campaign.

        Returns:
            The written files by name.
        """
        from agentev.experiments.reports import write_report

        runs, traces, config = self.runs, self.traces, self.config
        if runs is None:
            path = self.output_dir / "runs.csv"
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: no campaign results; run run_comprehensive_experiments() first"
                )
            runs = pd.read_csv(path)
            trace_path = self.output_dir / "traces.parquet"
            traces = pd.read_parquet(trace_path) if trace_path.is_file() else None
            config_path = self.output_dir / "campaign.json"
            config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        pareto_path = self.output_dir / "pareto.csv"
        pareto = pd.read_csv(pareto_path) if pareto_path.is_file() else None
        return write_report(
            self.output_dir, runs, config or {}, traces=traces, pareto=pareto, baseline=baseline
        )


def _row(spec: RunSpec, result: Mapping[str, Any]) -> dict[str, Any]:
    metrics = result["metrics"]
    row = {c: getattr(spec, c) for c in KEY_COLUMNS}
    row.update({name: metrics.get(name, math.nan) for name in METRIC_COLUMNS})
    return row


def _sorted(frame: pd.DataFrame, order: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows in the campaign's order: scenario, strategy (as given), then replication."""
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = {c: frame[c].map({v: i for i, v in enumerate(order[c])}) for c in order}
    idx = np.lexsort(
        (frame["replication"].to_numpy(), keys["strategy"].to_numpy(), keys["scenario"].to_numpy())
    )
    return frame.iloc[idx].reset_index(drop=True)


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} = {value!r}: must be an integer >= {low}")
    return int(value)


# ----------------------------------------------------------------- monitoring
def campaign_status(output_dir: str | Path) -> str:
    """One line on a campaign's progress, rate and ETA, from its checkpoint summary.

    Counts the stored runs now (they may be newer than the summary); the rate is that of
    the campaign's current session.
    """
    store = CheckpointStore(output_dir)
    summary = store.read_summary()
    if summary is None:
        return f"{output_dir}: no campaign here yet (no {store.root / 'checkpoint.json'})"
    total = summary.get("total")
    done = store.count()
    rate = summary.get("rate_runs_per_min") or 0.0
    eta = (total - done) / rate * 60.0 if total is not None and rate > 0 else None
    state = "finished" if total is not None and done >= total else "running or stopped"
    age = time.time() - summary.get("updated_unix", time.time())
    pct = 100.0 * done / total if total else 0.0
    return (
        f"{output_dir}: {done}/{total} runs ({pct:.0f} %), {rate:.1f} runs/min, "
        f"ETA {format_duration(eta)}, {state}; last update {format_duration(age)} ago"
    )
