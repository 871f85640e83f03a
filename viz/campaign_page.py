"""The page's second tab: the statistics of an experiment campaign's output directory.

It reads what ``agentev experiments`` writes (see ``docs/experiments.md``): ``runs.csv``,
``summary.csv`` and ``traces.parquet`` (and ``pareto.csv`` from a weights sweep), and shows

* the 95 % confidence intervals of the key metrics per scenario and strategy, as a table and
  as a figure;
* the report's figures, drawn by the same functions as ``report.md``'s PDFs
  (:mod:`agentev.experiments.reports`): box plots, state of charge, site power against the
  price, charger occupancy and, with ``pareto.csv``, the Pareto front.

A missing or malformed directory gives a message that says what is wrong, not a traceback.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import reacton.ipywidgets as rw
import solara
from matplotlib.figure import Figure

from agentev.experiments import reports, stats

DEFAULT_DIRECTORY = "results"
#: Resolution of the campaign figures (dots per inch).
CAMPAIGN_DPI = 80


# Plain text styles: solara.Markdown would load mermaid.js from a CDN in the browser.
HEADING = {"font-size": "20px", "font-weight": "500", "display": "block"}
SUBHEADING = {"font-size": "16px", "font-weight": "500", "display": "block", "margin-top": "12px"}


#: The tab is one cell of SolaraViz's grid (about 390 px high until resized): fill it and
#: scroll inside it.
FILL_CELL = {"height": "100%", "overflow-y": "auto", "padding-right": "8px"}


class CampaignError(ValueError):
    """The directory is not a readable campaign output directory."""


@dataclass
class Campaign:
    """A campaign's tables and figures, ready to show.

    Attributes:
        directory: The output directory.
        runs: One row per run, with the derived metrics (:func:`stats.add_derived`).
        summary: Per scenario, strategy and metric: n, mean, std and the 95 % CI.
        summary_source: ``summary.csv``, or how the summary was computed.
        figures: Figure title to PNG bytes, in display order.
        notes: Things the page should mention (a file missing or unreadable).
    """

    directory: Path
    runs: pd.DataFrame
    summary: pd.DataFrame
    summary_source: str
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=CAMPAIGN_DPI)
    return out.getvalue()


def _read_csv(path: Path, columns, what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CampaignError(f"{path}: cannot read {what}: {exc}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CampaignError(
            f"{path}: {what} lacks the columns {missing}; is this a campaign written by "
            "`agentev experiments`?"
        )
    return frame


def read_runs(directory: Path) -> pd.DataFrame:
    """``runs.csv`` with the derived metrics.

    Raises:
        CampaignError: if the directory or its ``runs.csv`` is missing or malformed.
    """
    if not str(directory).strip():
        raise CampaignError("Type the path of a campaign output directory.")
    if not directory.is_dir():
        raise CampaignError(
            f"No directory {directory} (relative paths start at {Path.cwd()}). Run e.g. "
            f"`agentev experiments --output-dir {directory}` first."
        )
    path = directory / "runs.csv"
    if not path.is_file():
        raise CampaignError(
            f"{directory} has no runs.csv: not a campaign output directory "
            "(see docs/experiments.md)."
        )
    needed = [*stats.KEY_COLUMNS, "energy_cost_adjusted", "demand_charge"]
    runs = _read_csv(path, needed, "the runs table")
    if runs.empty:
        raise CampaignError(f"{path} has no runs yet.")
    try:
        return stats.add_derived(runs)
    except TypeError as exc:
        raise CampaignError(f"{path}: a metric column is not numeric ({exc})") from None


def read_summary(directory: Path, runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``summary.csv``, or the same statistics computed from the runs when it is missing.

    Raises:
        CampaignError: if ``summary.csv`` is malformed.
    """
    path = directory / "summary.csv"
    if path.is_file():
        return _read_csv(path, stats.SUMMARY_COLUMNS, "the summary"), "summary.csv"
    return stats.summarize(runs), "computed from runs.csv (no summary.csv yet)"


def read_traces(directory: Path, notes: list[str]) -> pd.DataFrame | None:
    """``traces.parquet``, or None (with a note) when missing or unreadable."""
    path = directory / "traces.parquet"
    if not path.is_file():
        notes.append("No traces.parquet: the time-series figures are left out.")
        return None
    try:
        traces = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        notes.append(f"traces.parquet is unreadable ({exc}): the time-series figures are left out.")
        return None
    missing = [c for c in reports.TRACE_COLUMNS if c not in traces.columns]
    if missing:
        notes.append(f"traces.parquet lacks the columns {missing}: time-series figures left out.")
        return None
    return traces


def ci_figure(summary: pd.DataFrame, colours: dict) -> Figure:
    """Mean and 95 % CI of each key metric: one subplot per metric, scenarios along x."""
    metrics = [m for m in reports.KEY_METRICS if m in set(summary["metric"])]
    scenarios = sorted(summary["scenario"].unique())
    strategies = sorted(summary["strategy"].unique())
    cols = min(len(metrics), 2) or 1
    rows = max(1, -(-len(metrics) // cols))
    fig = Figure(figsize=(4.2 * cols + 0.5, 2.6 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    width = 0.8 / max(len(strategies), 1)
    for ax, metric in zip(axes, metrics, strict=False):
        rows_m = summary[summary["metric"] == metric]
        for j, strategy in enumerate(strategies):
            s = rows_m[rows_m["strategy"] == strategy].set_index("scenario").reindex(scenarios)
            x = np.arange(len(scenarios)) - 0.4 + width * (j + 0.5)
            mean = s["mean"].to_numpy(float)
            low = mean - s["ci_low"].to_numpy(float)
            high = s["ci_high"].to_numpy(float) - mean
            ax.errorbar(
                x,
                mean,
                yerr=np.nan_to_num(np.vstack([low, high])),
                fmt="o",
                ms=4,
                capsize=3,
                color=colours.get(strategy, "0.3"),
                label=strategy,
            )
        ax.set_xticks(range(len(scenarios)), scenarios)
        ax.set_ylabel(reports.KEY_METRICS[metric], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    fig.suptitle("Mean with 95 % confidence interval, per scenario and strategy")
    return fig


def load_campaign(directory: str | Path) -> Campaign:
    """Read a campaign's output directory and draw its figures.

    Raises:
        CampaignError: if the directory, ``runs.csv`` or ``summary.csv`` is missing or
            malformed (a missing or bad ``traces.parquet`` or ``pareto.csv`` only leaves its
            figures out, with a note).
    """
    directory = Path(str(directory).strip())
    runs = read_runs(directory)
    summary, source = read_summary(directory, runs)
    notes: list[str] = []
    traces = read_traces(directory, notes)
    colours = reports.strategy_colours(runs, traces)
    figures: dict[str, bytes] = {}
    with matplotlib.rc_context(reports.FIGURE_STYLE):
        figures["Confidence intervals"] = _png(ci_figure(summary, colours))
        figures["Per-run results (box plots, as in the report)"] = _png(
            reports.boxplots_figure(runs, colours)
        )
        if traces is not None and len(traces):
            drawn = reports.first_replication(traces)
            figures["Fleet state of charge"] = _png(reports.soc_figure(drawn, colours))
            figures["Site power and energy price"] = _png(
                reports.power_price_figure(drawn, colours)
            )
            figures["Charger occupancy"] = _png(reports.occupancy_figure(drawn, colours))
        pareto_path = directory / "pareto.csv"
        if pareto_path.is_file():
            try:
                pareto = _read_csv(pareto_path, reports.PARETO_COLUMNS, "the Pareto table")
                figures["Pareto front of the objective weights"] = _png(
                    reports.pareto_figure(pareto)
                )
            except CampaignError as exc:
                notes.append(str(exc))
    return Campaign(directory, runs, summary, source, figures, notes)


def ci_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Key metrics as ``mean [ci_low, ci_high]`` per scenario and strategy (one column each)."""
    key = summary[summary["metric"].isin(reports.REPORT_METRICS)].copy()

    def estimate(row) -> str:
        if pd.isna(row["ci_low"]):
            return f"{row['mean']:.4g} (n={row['n']})"
        return f"{row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]"

    key["value"] = key.apply(estimate, axis=1) if len(key) else []
    key["column"] = key["metric"] + " (" + key["unit"].fillna("") + ")"
    order = [m for m in reports.REPORT_METRICS if m in set(key["metric"])]
    columns = [key.loc[key["metric"] == m, "column"].iloc[0] for m in order]
    table = key.pivot_table(
        index=["scenario", "strategy"], columns="column", values="value", aggfunc="first"
    )
    return table.reindex(columns=columns).reset_index()


def directory_row(label: str, directory: str, set_directory, reload) -> None:
    """A directory field and a Reload button (inside a component's render)."""
    with solara.Row():
        solara.InputText(label, value=directory, on_value=set_directory, continuous_update=False)
        solara.Button("Reload", on_click=reload)


def figure_list(figures: dict[str, bytes], css_class: str) -> None:
    """Each PNG under its title, as wide as the tab (inside a component's render)."""
    for title, png in figures.items():
        solara.Text(title, style=SUBHEADING)
        layout = rw.Layout(width="100%", height="auto")  # keeps the aspect ratio
        image = rw.Image(value=png, format="png", layout=layout)
        solara.Div(children=[image], classes=[css_class])


@solara.component
def CampaignPage(model=None):  # noqa: N802 (a component, named like a class)
    """The campaign tab: a directory field, then the campaign's statistics and figures.

    A ``@solara.component`` (SolaraViz does not wrap it), so it does not redraw when the
    model steps; ``model`` is ignored.
    """
    directory, set_directory = solara.use_state(DEFAULT_DIRECTORY)
    reloads, set_reloads = solara.use_state(0)

    def load():
        try:
            return load_campaign(directory)
        except CampaignError as exc:
            return exc

    result = solara.use_memo(load, [directory, reloads])
    with solara.Div(classes=["agentev-campaign"], style=FILL_CELL) as page:
        solara.Text("Campaign statistics", style=HEADING)
        directory_row(
            "Campaign directory", directory, set_directory, lambda: set_reloads(reloads + 1)
        )
        if isinstance(result, CampaignError):
            solara.Error(str(result), classes=["agentev-campaign-error"])
        else:
            n_runs = len(result.runs)
            reps = result.runs.groupby(["scenario", "strategy"]).size()
            solara.Text(
                f"{result.directory}: {n_runs} runs, {reps.min()}-{reps.max()} replications per "
                f"scenario and strategy; statistics from {result.summary_source}.",
                classes=["agentev-campaign-info"],
            )
            for note in result.notes:
                solara.Warning(note)
            solara.Text("Key metrics: mean [95 % confidence interval]", style=SUBHEADING)
            solara.DataFrame(ci_table(result.summary), items_per_page=20)
            figure_list(result.figures, "agentev-campaign-figure")
    return page
