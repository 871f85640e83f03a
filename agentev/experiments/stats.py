r"""Campaign statistics over a table of runs.

Every function takes ``runs``: one row per run with the columns ``scenario``, ``strategy``,
``replication`` (0..R-1), ``seed``, one column per metric of :data:`agentev.metrics.DEFINITIONS`
and the reference metrics of :data:`agentev.metrics.REFERENCE_DEFINITIONS` (NaN when
unknown; :func:`fill_gaps` computes those that need other runs). Replication :math:`k` of
every strategy of a scenario uses the same seed (common random numbers), so strategies are
compared pair by pair on (scenario, replication).

Confidence intervals are two-sided 95 % Student-t intervals of a mean,

.. math::

    \bar x \pm t_{0.975,\,n-1} \, s / \sqrt{n}, \qquad
    s^2 = \frac{1}{n-1} \sum_i (x_i - \bar x)^2,

NaN when fewer than two values are known. All functions are pure: they copy, never modify,
their input, and return rows in a fixed order (scenarios and strategies sorted, metrics in the
order asked for).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from agentev.metrics import DEFINITIONS, DEPRECATED_METRICS, REFERENCE_DEFINITIONS
from agentev.strategies import DEPRECATED_STRATEGIES

#: Columns that identify a run.
KEY_COLUMNS: tuple[str, ...] = ("scenario", "strategy", "replication", "seed")
#: Strategy whose executed plan is the second reference (``gap_to_hindsight_plan``).
HINDSIGHT = "hindsight"
GAP = "gap_to_hindsight_plan"
LOWER_BOUND_GAP = "gap_to_lower_bound"
#: The strategy whose bill the saving is measured from.
BASELINE = "fcfs"
#: Metrics computed here from the others: name -> (unit, definition).
DERIVED: dict[str, tuple[str, str]] = {
    "energy_cost_total": ("currency", "energy_cost_adjusted + demand_charge"),
}
#: Unit of every metric a campaign reports.
UNITS: dict[str, str] = {
    **{name: unit for name, (unit, _) in DEFINITIONS.items()},
    **{name: unit for name, (unit, _) in DERIVED.items()},
    **{name: unit for name, (unit, _) in REFERENCE_DEFINITIONS.items()},
}
#: The default metrics, in report order.
DEFAULT_METRICS: tuple[str, ...] = (*DEFINITIONS, *DERIVED, *REFERENCE_DEFINITIONS)
#: The metrics of ``gaps.csv``: each run against the references of its scenario and seed.
GAP_METRICS: tuple[str, ...] = (LOWER_BOUND_GAP, GAP, "possible_saving", "savings_captured")
CONFIDENCE = 0.95

SUMMARY_COLUMNS = [
    "scenario",
    "strategy",
    "metric",
    "unit",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
]
COMPARISON_COLUMNS = [
    "scenario",
    "strategy",
    "baseline",
    "metric",
    "n",
    "mean_diff",
    "ci_low",
    "ci_high",
    "t_stat",
    "t_pvalue",
    "wilcoxon_stat",
    "wilcoxon_pvalue",
    "cohens_dz",
    "relative_diff",
]
GAP_COLUMNS = ["scenario", "strategy", "metric", "n", "mean", "ci_low", "ci_high"]


def add_derived(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``runs`` with the derived metrics added.

    ``energy_cost_total`` = ``energy_cost_adjusted`` + ``demand_charge`` (currency): the energy
    cost corrected for the change in stored energy plus the pro-rated demand charge, i.e. the
    cost term of ``weighted_objective``.

    Args:
        runs: One row per run (see the module docstring).

    Returns:
        The copy, with ``energy_cost_total`` (recomputed if already present).
    """
    out = runs.copy()
    out["energy_cost_total"] = out["energy_cost_adjusted"] + out["demand_charge"]
    return out


def summarize(runs: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    r"""Mean, standard deviation and 95 % CI of each metric per scenario and strategy.

    For the known (non-NaN) values :math:`x_1..x_n` of a metric in a group: ``mean`` =
    :math:`\bar x`, ``std`` = :math:`s` (ddof = 1; NaN when n < 2) and ``ci_low``,
    ``ci_high`` = :math:`\bar x \mp t_{0.975,n-1} s/\sqrt n` (NaN when n < 2), all in the
    metric's ``unit``.

    Args:
        runs: One row per run (see the module docstring).
        metrics: Metric columns to summarise; None: :data:`DEFAULT_METRICS` (those present).

    Returns:
        One row per (scenario, strategy, metric) with the columns :data:`SUMMARY_COLUMNS`.
    """
    runs = add_derived(runs)
    names = _metric_names(runs, metrics)
    rows = []
    for (scenario, strategy), group in _groups(runs, ["scenario", "strategy"]):
        for name in names:
            values = _known(group[name])
            mean, std, low, high = _mean_ci(values)
            rows.append(
                (scenario, strategy, name, UNITS.get(name, ""), len(values), mean, std, low, high)
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def paired_comparisons(
    runs: pd.DataFrame, baseline: str = "fcfs", metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    r"""Each strategy against ``baseline``, paired on replication (common random numbers).

    For a scenario, strategy and metric, the pairs are the replications both strategies ran
    with the metric known (an inner join; pairs with a NaN are dropped). With the differences
    :math:`d_k = x_k - b_k` (strategy minus baseline, in the metric's unit) and :math:`s_d` their
    standard deviation (ddof = 1):

    * ``mean_diff`` = :math:`\bar d`; ``ci_low``, ``ci_high`` = :math:`\bar d \mp
      t_{0.975,n-1} s_d/\sqrt n` (the paired t interval);
    * ``t_stat``, ``t_pvalue``: :func:`scipy.stats.ttest_rel` (two-sided);
    * ``wilcoxon_stat``, ``wilcoxon_pvalue``: :func:`scipy.stats.wilcoxon` of :math:`d`
      (signed-rank test, zero differences dropped); NaN and 1.0 when every difference is 0;
    * ``cohens_dz`` = :math:`\bar d / s_d` (NaN when :math:`s_d = 0`);
    * ``relative_diff`` = :math:`\bar d / \bar b` (NaN when :math:`\bar b = 0`).

    Every statistic is NaN when fewer than two pairs remain (``relative_diff`` needs one).

    Args:
        runs: One row per run (see the module docstring).
        baseline: The reference strategy; scenarios without it yield no rows.
        metrics: Metric columns to compare; None: :data:`DEFAULT_METRICS` (those present).

    Returns:
        The columns :data:`COMPARISON_COLUMNS`, one row per (scenario, strategy, metric).

    Raises:
        ValueError: A (scenario, strategy, replication) occurs twice.
    """
    runs = add_derived(runs)
    names = _metric_names(runs, metrics)
    _check_unique(runs)
    rows = []
    for scenario, in_scenario in _groups(runs, ["scenario"]):
        by_strategy = dict(_groups(in_scenario, ["strategy"]))
        if baseline not in by_strategy:
            continue
        base = by_strategy[baseline].set_index("replication")
        for strategy, group in by_strategy.items():
            if strategy == baseline:
                continue
            pairs = group[["replication", *names]].merge(
                base[names], left_on="replication", right_index=True, suffixes=("", "__baseline")
            )
            pairs = pairs.sort_values("replication")
            for name in names:
                both = pairs[[name, f"{name}__baseline"]].dropna()
                x = both[name].to_numpy(dtype=float)
                b = both[f"{name}__baseline"].to_numpy(dtype=float)
                rows.append((scenario, strategy, baseline, name, *_paired(x, b)))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def upgrade_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``runs`` with old names mapped to new ones (with a DeprecationWarning).

    Runs tables and checkpoints written before the rename call the hindsight plan ``oracle``
    and its gap ``gap_to_offline_optimum``; they stay readable for one release.
    """
    out = runs.copy()
    old_columns = [c for c in DEPRECATED_METRICS if c in out.columns]
    old_strategies = set(out["strategy"]) & set(DEPRECATED_STRATEGIES) if len(out) else set()
    if old_columns or old_strategies:
        warnings.warn(
            f"runs with old names ({', '.join(sorted([*old_columns, *old_strategies]))}) are "
            "read under the new ones (gap_to_hindsight_plan, hindsight); rerun to update",
            DeprecationWarning,
            stacklevel=3,
        )
        for old in old_columns:
            new = DEPRECATED_METRICS[old]
            out[new] = out[old] if new not in out.columns else out[new].fillna(out[old])
            out = out.drop(columns=old)
        out["strategy"] = out["strategy"].replace(DEPRECATED_STRATEGIES)
    return out


def _reference(runs: pd.DataFrame, strategy: str, column: str) -> np.ndarray:
    """Per run, ``column`` of the ``strategy`` run of its scenario and replication (or NaN)."""
    if column not in runs.columns:
        return np.full(len(runs), np.nan)
    ref = runs[runs["strategy"] == strategy].set_index(["scenario", "replication"])[column]
    if not ref.index.is_unique:
        raise ValueError(f"two {strategy} runs share a scenario and replication; drop one")
    keys = pd.MultiIndex.from_frame(runs[["scenario", "replication"]])
    return ref.reindex(keys).to_numpy(dtype=float)


def fill_gaps(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``runs`` with the metrics against references computed from other runs.

    Per run, against the runs of the same scenario and replication:

    * ``gap_to_lower_bound`` = :math:`(J - J_{lb}) / J_{lb}` from ``lower_bound_objective``;
    * ``hindsight_objective`` and ``gap_to_hindsight_plan`` = :math:`(J - J_h) / J_h` from
      the ``hindsight`` run (0 for itself, NaN where there is none or :math:`J_h` is 0);
    * ``possible_saving`` = :math:`B_{fcfs} - C_{fcfs}` and ``savings_captured`` =
      :math:`(B_{fcfs} - B) / (B_{fcfs} - C_{fcfs})`, with :math:`B` a run's bill
      (``energy_cost_adjusted + demand_charge``) and :math:`C` its ``cheapest_bill``, from
      the ``fcfs`` run (0 for itself).

    Existing values of these columns are replaced; old names are read (:func:`upgrade_runs`).

    Args:
        runs: One row per run (see the module docstring).

    Returns:
        The copy.
    """
    out = upgrade_runs(runs)
    j = out["weighted_objective"].to_numpy(dtype=float)
    if "lower_bound_objective" in out.columns:
        lb = out["lower_bound_objective"].to_numpy(dtype=float)
        out[LOWER_BOUND_GAP] = _gap(j, lb)
    hindsight = _reference(out, HINDSIGHT, "weighted_objective")
    out["hindsight_objective"] = hindsight
    out[GAP] = _gap(j, hindsight)
    bill = (out["energy_cost_adjusted"] + out["demand_charge"]).to_numpy(dtype=float)
    out["_bill"] = bill
    fcfs_bill = _reference(out, BASELINE, "_bill")
    fcfs_cheapest = _reference(out, BASELINE, "cheapest_bill")
    possible = fcfs_bill - fcfs_cheapest
    out["possible_saving"] = possible
    safe = np.where(possible > 0, possible, np.nan)
    out["savings_captured"] = (fcfs_bill - bill) / safe
    return out.drop(columns="_bill")


def gap_to_references(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean of each run's metrics against its references, with a 95 % CI (``gaps.csv``).

    For each (scenario, strategy) and each metric of :data:`GAP_METRICS` known for some of
    its runs (see :func:`fill_gaps`): ``n`` runs with a value, the mean and its Student-t 95 %
    interval. Each value is already a per-seed comparison, so the interval is a paired one.

    Args:
        runs: One row per run (see the module docstring).

    Returns:
        The columns :data:`GAP_COLUMNS`.
    """
    filled = fill_gaps(runs)
    rows = []
    for (scenario, strategy), group in _groups(filled, ["scenario", "strategy"]):
        for name in GAP_METRICS:
            if name not in group.columns:
                continue
            values = _known(group[name])
            if not len(values):
                continue
            mean, _, low, high = _mean_ci(values)
            rows.append((scenario, strategy, name, len(values), mean, low, high))
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def _gap(objective: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(J - J_ref) / J_ref``, as in :func:`agentev.metrics.relative_metrics`.

    NaN where ``J_ref`` is 0 or NaN (the metric is then undefined).
    """
    safe = np.where(reference == 0.0, np.nan, reference)
    return (objective - safe) / safe


def _metric_names(runs: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    """The metric columns to use, checked against ``runs``."""
    if metrics is None:
        return [name for name in DEFAULT_METRICS if name in runs.columns]
    missing = [name for name in metrics if name not in runs.columns]
    if missing:
        raise ValueError(f"runs has no column for the metrics {missing}; pick from {UNITS}")
    return list(metrics)


def _groups(frame: pd.DataFrame, by: list[str]) -> list[tuple]:
    """``(key, group)`` pairs in sorted key order (a scalar key for a single column)."""
    grouped = frame.groupby(by if len(by) > 1 else by[0], sort=True)
    return [(key, group) for key, group in grouped]


def _check_unique(runs: pd.DataFrame) -> None:
    """Raise if a (scenario, strategy, replication) occurs twice."""
    dup = runs.duplicated(["scenario", "strategy", "replication"])
    if dup.any():
        first = runs.loc[dup, ["scenario", "strategy", "replication"]].iloc[0].tolist()
        raise ValueError(f"(scenario, strategy, replication) {first} occurs twice; drop one")


def _known(values: pd.Series) -> np.ndarray:
    """The non-NaN values as floats."""
    return values.dropna().to_numpy(dtype=float)


def _half_width(std: float, n: int) -> float:
    """Half-width of the Student-t interval of a mean (NaN when n < 2)."""
    if n < 2:
        return math.nan
    return float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)


def _mean_ci(values: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, std (ddof = 1), CI low and CI high of ``values`` (NaN where undefined)."""
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n >= 2 else math.nan
    half = _half_width(std, n)
    return mean, std, mean - half, mean + half


def _paired(x: np.ndarray, b: np.ndarray) -> tuple:
    """``n`` and the statistics of :func:`paired_comparisons` for pairs ``(x, b)``."""
    n = len(x)
    d = x - b
    mean_diff, sd, low, high = _mean_ci(d)
    base_mean = float(b.mean()) if n else math.nan
    relative = mean_diff / base_mean if n and base_mean != 0.0 else math.nan
    t_stat = t_p = w_stat = w_p = dz = math.nan
    if n >= 2:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            t = sps.ttest_rel(x, b)
            t_stat, t_p = float(t.statistic), float(t.pvalue)
            if np.all(d == 0.0):
                w_stat, w_p = math.nan, 1.0
            else:
                w = sps.wilcoxon(d)
                w_stat, w_p = float(w.statistic), float(w.pvalue)
        dz = mean_diff / sd if sd > 0.0 else math.nan
    return n, mean_diff, low, high, t_stat, t_p, w_stat, w_p, dz, relative
