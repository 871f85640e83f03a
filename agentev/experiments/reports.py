"""Figures and report files of a campaign.

:func:`write_figures` draws PDFs with :class:`matplotlib.figure.Figure` (never pyplot, so it is
safe in threads and servers); :func:`write_report` writes the statistics of
:mod:`agentev.experiments.stats` as CSV, JSON and a Markdown report next to them. Every file is
written atomically (``name.tmp``, then :func:`os.replace`) and is byte-identical for the same
inputs: PDFs carry no creation date, tables keep full float precision.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from agentev.experiments import framework, stats

#: Metrics of the box plots and the report's table, with axis labels (units in brackets).
KEY_METRICS: dict[str, str] = {
    "energy_cost_total": "Energy cost incl. demand charge [currency]",
    "service_shortfall_vehicle_h": "Service shortfall [vehicle-h]",
    "tasks_completed": "Tasks completed [count]",
    "charger_wait_mean_min": "Mean charger wait [min]",
}
#: Extra columns of the report's results table.
REPORT_METRICS: tuple[str, ...] = (
    *KEY_METRICS,
    "peak_site_power_kw",
    "completion_ratio",
    "weighted_objective",
)
#: Figure files, in the order :func:`write_figures` draws them.
FIGURES: tuple[str, ...] = (
    "boxplots.pdf",
    "soc_trajectories.pdf",
    "site_power_price.pdf",
    "charger_occupancy.pdf",
    "pareto.pdf",
)
TRACE_COLUMNS = ["scenario", "strategy", "replication", *framework.TRACE_COLUMNS]
PARETO_COLUMNS = [
    "alpha_energy",
    "alpha_downtime",
    "alpha_utilization",
    "energy_cost_total",
    "service_shortfall_vehicle_h",
    "pareto",
]
#: Minutes per bin of the charger-occupancy curves (per-minute steps are unreadable).
OCCUPANCY_BIN_MIN = 15
#: A name no output file may contain: the campaign's own runs table uses it.
RESERVED_NAME = "runs"

FIGURE_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    # TrueType instead of Type 3 fonts: text stays selectable and searchable in the PDF.
    "pdf.fonttype": 42,
}
_PDF_METADATA = {"CreationDate": None, "ModDate": None}
_SUBPLOT_W = 3.4  # inches per subplot column
_SUBPLOT_H = 2.4  # inches per subplot row


def write_figures(
    runs: pd.DataFrame,
    traces: pd.DataFrame | None,
    figures_dir: str | Path,
    pareto: pd.DataFrame | None = None,
) -> list[Path]:
    """Draw the campaign's figures as PDFs.

    * ``boxplots.pdf``: one column per scenario, one row per metric of :data:`KEY_METRICS`,
      one box per strategy (with the runs as dots);
    * from ``traces`` (skipped when None or empty), one subplot per scenario and one colour per
      strategy, over time in hours: ``soc_trajectories.pdf`` (fleet mean state of charge with
      its min-max band), ``site_power_price.pdf`` (site power in kW, the energy price on a twin
      axis) and ``charger_occupancy.pdf`` (occupied ports / ports, 15-minute means);
    * ``pareto.pdf`` when ``pareto`` is given: energy cost against service shortfall for every
      weight combination, the non-dominated front as a step line with its weights annotated.

    Args:
        runs: One row per run (see :mod:`agentev.experiments.stats`).
        traces: One row per simulated minute (columns :data:`TRACE_COLUMNS`), usually of
            replication 0 only; the smallest replication of each scenario and strategy is drawn.
        figures_dir: Directory for the PDFs (created if missing).
        pareto: One row per weight combination (columns :data:`PARETO_COLUMNS`).

    Returns:
        The written paths, sorted.
    """
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = stats.add_derived(runs)
    colours = strategy_colours(runs, traces)
    figures: dict[str, Callable[[], Figure]] = {
        "boxplots.pdf": lambda: boxplots_figure(runs, colours)
    }
    if traces is not None and len(traces):
        _require(traces, TRACE_COLUMNS, "traces")
        drawn = first_replication(traces)
        figures["soc_trajectories.pdf"] = lambda: soc_figure(drawn, colours)
        figures["site_power_price.pdf"] = lambda: power_price_figure(drawn, colours)
        figures["charger_occupancy.pdf"] = lambda: occupancy_figure(drawn, colours)
    if pareto is not None:
        _require(pareto, PARETO_COLUMNS, "pareto")
        figures["pareto.pdf"] = lambda: pareto_figure(pareto)
    written = []
    with matplotlib.rc_context(FIGURE_STYLE):
        for name, draw in figures.items():
            path = out / name
            _save_pdf(draw(), path)
            written.append(path)
    return sorted(written)


def write_report(
    output_dir: str | Path,
    runs: pd.DataFrame,
    config: Mapping[str, Any],
    traces: pd.DataFrame | None = None,
    pareto: pd.DataFrame | None = None,
    baseline: str = "fcfs",
) -> dict[str, Path]:
    """Write the campaign's statistics, figures and Markdown report.

    Files in ``output_dir``: ``summary.csv`` (:func:`~agentev.experiments.stats.summarize`),
    ``comparisons.csv`` (:func:`~agentev.experiments.stats.paired_comparisons` against
    ``baseline``), ``gaps.csv`` (:func:`~agentev.experiments.stats.gap_to_references`),
    ``results.json`` (``config``, the runs and the three tables; NaN and infinities as
    ``null``), ``report.md`` and the PDFs of :func:`write_figures` in ``figures/``. The
    metrics against references are computed from the runs
    (:func:`~agentev.experiments.stats.fill_gaps`).

    Args:
        output_dir: Directory for the files (created if missing).
        runs: One row per run (see :mod:`agentev.experiments.stats`).
        config: The campaign's configuration (JSON-serialisable: mappings, sequences, numbers,
            strings, paths, dataclasses).
        traces: Per-minute traces for the time-series figures (see :func:`write_figures`).
        pareto: Weight combinations for ``pareto.pdf`` (see :func:`write_figures`).
        baseline: The strategy every other one is compared with.

    Returns:
        File stem (``"summary"``, ``"report"``, ``"boxplots"``, ...) to written path.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = stats.add_derived(stats.fill_gaps(runs))
    summary = stats.summarize(runs)
    comparisons = stats.paired_comparisons(runs, baseline=baseline)
    gaps = stats.gap_to_references(runs)
    written: dict[str, Path] = {}
    for name, table in (("summary", summary), ("comparisons", comparisons), ("gaps", gaps)):
        written[name] = _write_text(
            out / f"{name}.csv", table.to_csv(index=False, lineterminator="\n")
        )
    results = {
        "config": config,
        "runs": runs.to_dict(orient="records"),
        "summary": summary.to_dict(orient="records"),
        "comparisons": comparisons.to_dict(orient="records"),
        "gaps": gaps.to_dict(orient="records"),
    }
    text = json.dumps(_jsonable(results), indent=2, allow_nan=False, ensure_ascii=False)
    written["results"] = _write_text(out / "results.json", text + "\n")
    figures = write_figures(runs, traces, out / "figures", pareto=pareto)
    for path in figures:
        written[path.stem] = path
    report = _markdown(out, runs, config, summary, comparisons, gaps, figures, baseline)
    written["report"] = _write_text(out / "report.md", report)
    return written


# --- figures -------------------------------------------------------------------------------


def boxplots_figure(runs: pd.DataFrame, colours: dict[str, Any]) -> Figure:
    """Box plots: rows = key metrics, columns = scenarios, boxes = strategies."""
    scenarios = sorted(runs["scenario"].unique())
    metrics = [m for m in KEY_METRICS if m in runs.columns]
    fig, axes = _grid(len(metrics), len(scenarios), sharey="row")
    for col, scenario in enumerate(scenarios):
        in_scenario = runs[runs["scenario"] == scenario]
        strategies = sorted(in_scenario["strategy"].unique())
        for row, metric in enumerate(metrics):
            ax = axes[row, col]
            data = [
                in_scenario.loc[in_scenario["strategy"] == s, metric].dropna().to_numpy()
                for s in strategies
            ]
            positions = np.arange(1, len(strategies) + 1)
            boxes = ax.boxplot(
                data,
                positions=positions,
                widths=0.6,
                patch_artist=True,
                showfliers=False,
                medianprops={"color": "black", "linewidth": 1.0},
            )
            for patch, strategy in zip(boxes["boxes"], strategies, strict=True):
                patch.set_facecolor(colours[strategy])
                patch.set_alpha(0.45)
            for pos, values, strategy in zip(positions, data, strategies, strict=True):
                ax.plot(
                    np.full(len(values), pos),
                    values,
                    "o",
                    markersize=2.5,
                    color=colours[strategy],
                    markeredgecolor="black",
                    markeredgewidth=0.3,
                )
            ax.set_xticks(positions, strategies, rotation=30, ha="right")
            ax.grid(axis="x", visible=False)
            if row == 0:
                ax.set_title(f"Scenario: {scenario}")
            if col == 0:
                ax.set_ylabel(KEY_METRICS[metric])
    fig.suptitle("Per-run results by scenario and strategy (box: quartiles, dots: runs)")
    return fig


def soc_figure(traces: pd.DataFrame, colours: dict[str, Any]) -> Figure:
    """Fleet mean state of charge with its min-max band over time."""

    def draw(ax: Axes, strategy: str, t: pd.DataFrame) -> None:
        hours = t["time_min"].to_numpy() / 60.0
        colour = colours[strategy]
        ax.fill_between(hours, t["soc_min"], t["soc_max"], color=colour, alpha=0.15, lw=0)
        ax.plot(hours, t["soc_mean"], color=colour, lw=1.2, label=strategy)

    fig = _per_scenario(traces, draw, "State of charge [fraction of capacity]")
    fig.suptitle("Fleet state of charge (line: fleet mean, band: min to max over vehicles)")
    return fig


def power_price_figure(traces: pd.DataFrame, colours: dict[str, Any]) -> Figure:
    """Site power per strategy with the energy price on a twin axis."""

    def draw(ax: Axes, strategy: str, t: pd.DataFrame) -> None:
        hours = t["time_min"].to_numpy() / 60.0
        ax.plot(hours, t["site_power_kw"], color=colours[strategy], lw=1.0, label=strategy)

    groups = _by_scenario(traces)
    fig = _per_scenario(traces, draw, "Site power [kW]", sharey=False, legend=False)
    axes = list(fig.axes)
    for col, (ax, (_, in_scenario)) in enumerate(zip(axes, groups, strict=True)):
        # the price is the scenario's tariff, the same for every strategy: draw it once
        first = sorted(in_scenario["strategy"].unique())[0]
        t = in_scenario[in_scenario["strategy"] == first].sort_values("time_min")
        twin = ax.twinx()
        twin.grid(False)
        # a row at minute t holds the price of the minute [t - 1, t)
        twin.step(
            t["time_min"].to_numpy() / 60.0,
            t["price_per_kwh"],
            where="pre",
            color="0.3",
            ls="--",
            lw=1.0,
            label="energy price (right axis)",
        )
        if col == len(groups) - 1:
            twin.set_ylabel("Energy price [currency/kWh]")
    _figure_legend(fig)
    fig.suptitle("Site power (base load + charging) and energy price")
    return fig


def occupancy_figure(traces: pd.DataFrame, colours: dict[str, Any]) -> Figure:
    """Share of charger ports occupied, in 15-minute means."""

    def draw(ax: Axes, strategy: str, t: pd.DataFrame) -> None:
        share = t["ports_occupied"] / t["num_ports"].where(t["num_ports"] > 0)
        # a row at minute t describes the minute [t - 1, t): bin by the minute's start
        start = ((t["time_min"] - 1).clip(lower=0) // OCCUPANCY_BIN_MIN) * OCCUPANCY_BIN_MIN
        binned = share.groupby(start.to_numpy()).mean()
        edges = np.append(binned.index.to_numpy(), float(t["time_min"].max())) / 60.0
        values = np.append(binned.to_numpy(), binned.to_numpy()[-1:])
        ax.step(edges, values, where="post", color=colours[strategy], lw=1.0, label=strategy)
        ax.set_ylim(-0.02, 1.02)

    label = f"Occupied ports [share, {OCCUPANCY_BIN_MIN}-min mean]"
    fig = _per_scenario(traces, draw, label)
    fig.suptitle("Charger occupancy (occupied ports / ports)")
    return fig


def pareto_figure(pareto: pd.DataFrame) -> Figure:
    """Energy cost against service shortfall, with the non-dominated front."""
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x, y = "energy_cost_total", "service_shortfall_vehicle_h"
    ax.scatter(pareto[x], pareto[y], s=18, color="0.6", label="weight combinations", zorder=2)
    front = pareto[pareto["pareto"].astype(bool)].sort_values([x, y])
    if len(front):
        ax.step(
            front[x],
            front[y],
            where="post",
            color="tab:red",
            lw=1.2,
            zorder=3,
            label="non-dominated front",
        )
        ax.scatter(front[x], front[y], s=26, color="tab:red", zorder=4)
        for _, point in front.iterrows():
            text = (
                f"({point['alpha_energy']:g}, {point['alpha_downtime']:g}, "
                f"{point['alpha_utilization']:g})"
            )
            ax.annotate(
                text,
                (point[x], point[y]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
            )
    ax.set_xlabel(KEY_METRICS[x])
    ax.set_ylabel(KEY_METRICS[y])
    ax.set_title("Trade-off over objective weights\n(labels: alpha_E, alpha_D, alpha_U)")
    ax.legend(loc="upper right", framealpha=0.8)
    return fig


def _per_scenario(
    traces: pd.DataFrame,
    draw: Callable[[Axes, str, pd.DataFrame], None],
    ylabel: str,
    sharey: bool = True,
    legend: bool = True,
) -> Figure:
    """One subplot per scenario; ``draw(ax, strategy, trace)`` for each strategy in it."""
    groups = _by_scenario(traces)
    fig, axes = _grid(1, len(groups), sharey=sharey)
    for col, (scenario, in_scenario) in enumerate(groups):
        ax = axes[0, col]
        for strategy, t in in_scenario.groupby("strategy", sort=True):
            draw(ax, strategy, t.sort_values("time_min"))
        ax.set_title(f"Scenario: {scenario}")
        ax.set_xlabel("Time [h]")
        if col == 0:
            ax.set_ylabel(ylabel)
    if legend:
        _figure_legend(fig)
    return fig


def _figure_legend(fig: Figure) -> None:
    """One legend below the subplots for every labelled artist (each label once)."""
    entries: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(
            list(entries.values()),
            list(entries),
            loc="outside lower center",
            ncols=min(len(entries), 6),
            frameon=False,
        )


def _grid(rows: int, cols: int, sharey: Any) -> tuple[Figure, np.ndarray]:
    """A figure with a ``rows`` x ``cols`` array of axes."""
    rows, cols = max(rows, 1), max(cols, 1)
    width = max(_SUBPLOT_W * cols + 0.6, 7.0)  # room for the title with one scenario
    fig = Figure(figsize=(width, _SUBPLOT_H * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, sharey=sharey, squeeze=False)
    return fig, axes


def _by_scenario(traces: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(scenario, group) for scenario, group in traces.groupby("scenario", sort=True)]


def first_replication(traces: pd.DataFrame) -> pd.DataFrame:
    """The rows of the smallest replication of each scenario and strategy."""
    first = traces.groupby(["scenario", "strategy"])["replication"].transform("min")
    return traces[traces["replication"] == first]


def strategy_colours(runs: pd.DataFrame, traces: pd.DataFrame | None) -> dict[str, Any]:
    """One colour per strategy, the same in every figure (sorted names, tab10 cycle)."""
    names = set(runs["strategy"])
    if traces is not None and len(traces):
        names |= set(traces["strategy"])
    palette = matplotlib.colormaps["tab10"].colors
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(names))}


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the columns {missing}; it needs {list(columns)}")


def _save_pdf(fig: Figure, path: Path) -> None:
    """Save ``fig`` as a PDF without timestamps, atomically."""
    tmp = _tmp_path(path)
    fig.savefig(tmp, format="pdf", metadata=_PDF_METADATA)
    os.replace(tmp, path)


# --- files ---------------------------------------------------------------------------------


def _tmp_path(path: Path) -> Path:
    """``path`` + ``.tmp``; refuses names containing :data:`RESERVED_NAME`."""
    if RESERVED_NAME in path.name:
        raise ValueError(f"{path.name!r}: report files may not contain {RESERVED_NAME!r}")
    return path.with_name(path.name + ".tmp")


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newline line ends) atomically; return ``path``."""
    tmp = _tmp_path(path)
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as None and NumPy, path and dataclass values as JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to results.json")


# --- report.md -----------------------------------------------------------------------------


def _markdown(
    out: Path,
    runs: pd.DataFrame,
    config: Mapping[str, Any],
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    gaps: pd.DataFrame,
    figures: list[Path],
    baseline: str,
) -> str:
    """The Markdown report."""
    scenarios = sorted(runs["scenario"].unique())
    strategies = sorted(runs["strategy"].unique())
    reps = runs.groupby(["scenario", "strategy"])["replication"].nunique()
    lines = [
        "# Campaign report",
        "",
        f"{len(runs)} runs: {len(scenarios)} scenario(s) ({', '.join(scenarios)}) x "
        f"{len(strategies)} strategies ({', '.join(strategies)}), "
        f"{_span(reps)} replication(s) each. Replication k of every strategy in a scenario "
        "uses the same seed (common random numbers); strategies are compared pair by pair.",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(_jsonable(config), indent=2, allow_nan=False, ensure_ascii=False),
        "```",
        "",
        "## Results",
        "",
        "Mean and 95 % Student-t confidence interval of the mean over replications.",
        "",
    ]
    metrics = [m for m in REPORT_METRICS if m in set(summary["metric"])]
    for scenario in scenarios:
        lines += [f"### Scenario `{scenario}`", ""]
        header = ["strategy", "n"] + [f"{m} [{stats.UNITS.get(m, '')}]" for m in metrics]
        rows = []
        part = summary[summary["scenario"] == scenario]
        for strategy in sorted(part["strategy"].unique()):
            cells = part[part["strategy"] == strategy].set_index("metric")
            n = int(cells.loc[metrics[0], "n"]) if metrics else 0
            rows.append(
                [f"`{strategy}`", str(n)]
                + [
                    _estimate(cells.loc[m, "mean"], cells.loc[m, "ci_low"], cells.loc[m, "ci_high"])
                    for m in metrics
                ]
            )
        lines += _table(header, rows) + [""]
    lines += [f"## Paired comparisons against `{baseline}`", ""]
    if comparisons.empty:
        lines += [f"No scenario has runs of the baseline `{baseline}`.", ""]
    else:
        lines += [
            "Difference strategy minus baseline over paired replications: mean and 95 % paired-t "
            "interval, relative to the baseline mean, p-values of the paired t test and the "
            "Wilcoxon signed-rank test, and Cohen's d_z (mean / std of the differences). "
            "Every metric is in `comparisons.csv`.",
            "",
        ]
        # the report's metrics in report order; every metric is in comparisons.csv
        rank = {m: i for i, m in enumerate(metrics)}
        shown = comparisons[comparisons["metric"].isin(rank)]
        shown = shown.sort_values(
            ["scenario", "strategy", "metric"],
            key=lambda c: c.map(rank) if c.name == "metric" else c,
            kind="stable",
        )
        for scenario in sorted(shown["scenario"].unique()):
            lines += [f"### Scenario `{scenario}`", ""]
            header = [
                "strategy",
                "metric",
                "n",
                "mean diff [95 % CI]",
                "relative",
                "p (t)",
                "p (Wilcoxon)",
                "d_z",
            ]
            rows = []
            part = shown[shown["scenario"] == scenario]
            for r in part.itertuples(index=False):
                rows.append(
                    [
                        f"`{r.strategy}`",
                        f"{r.metric} [{stats.UNITS.get(r.metric, '')}]",
                        str(r.n),
                        _estimate(r.mean_diff, r.ci_low, r.ci_high),
                        _percent(r.relative_diff),
                        _p(r.t_pvalue),
                        _p(r.wilcoxon_pvalue),
                        _num(r.cohens_dz),
                    ]
                )
            lines += _table(header, rows) + [""]
    if not gaps.empty:
        lines += [
            "## Against the references",
            "",
            "Per run, against the same scenario and replication: `gap_to_lower_bound` = "
            "(J - J_lb) / J_lb, J_lb a proven lower bound of the weighted objective of every "
            "run (never negative); `gap_to_hindsight_plan` = (J - J_h) / J_h against the "
            "executed `hindsight` plan (a second reference, not an optimum: it can be "
            "negative); `possible_saving`, what charging decisions alone could have saved on "
            "`fcfs`'s day (its bill minus its cheapest bill); `savings_captured`, the share of "
            "it a strategy realises. Mean and 95 % CI of the per-seed values (paired).",
            "",
        ]
        rows = [
            [
                f"`{r.scenario}`",
                f"`{r.strategy}`",
                f"{r.metric} [{stats.UNITS.get(r.metric, '')}]",
                str(r.n),
                _estimate(r.mean, r.ci_low, r.ci_high),
            ]
            for r in gaps.itertuples(index=False)
        ]
        lines += _table(["scenario", "strategy", "metric", "n", "mean [95 % CI]"], rows) + [""]
    lines += ["## Figures", ""]
    lines += [f"- [{p.name}]({p.relative_to(out).as_posix()})" for p in figures]
    lines += [
        "",
        "## Files",
        "",
        "- [summary.csv](summary.csv): mean, std and CI per scenario, strategy and metric",
        f"- [comparisons.csv](comparisons.csv): paired comparisons against `{baseline}`",
        "- [gaps.csv](gaps.csv): gaps to the lower bound and the hindsight plan, savings captured",
        "- [results.json](results.json): configuration, every run and the tables above",
        "",
    ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _num(x: float) -> str:
    """Four significant digits; an en dash when undefined."""
    return f"{x:.4g}" if x is not None and math.isfinite(x) else "–"


def _estimate(mean: float, low: float, high: float) -> str:
    if not math.isfinite(mean):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return _num(mean)
    return f"{_num(mean)} [{_num(low)}, {_num(high)}]"


def _percent(x: float) -> str:
    return f"{100 * x:+.1f} %" if math.isfinite(x) else "–"


def _p(x: float) -> str:
    if not math.isfinite(x):
        return "–"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def _span(counts: pd.Series) -> str:
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"
