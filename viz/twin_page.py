"""The page's third tab: how far the live twin's picture of the fleet is from the plant.

It reads what ``agentev twin --out DIR`` writes (``twin.json``, ``twin_estimates.csv``; see
``docs/twin.md``) and, when the plant's outputs sit beside it (``agentev twin --inprocess
--out DIR`` writes ``DIR/twin`` and ``DIR/plant``; ``agentev plant --out DIR/plant`` does the
same for a plant on a broker), its true states of charge. It shows

* the twin's divergence metrics: SoC error of its estimates at each state received (mean,
  max), state mismatches, rejected messages by reason, duplicates, stale vehicles, commands;
* with the plant: the twin's estimate against the plant's state of charge over time for the
  vehicles with the largest error, and the largest absolute error over the fleet per minute.

A missing or malformed directory gives a message that says what is wrong, not a traceback.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import solara
from campaign_page import FILL_CELL, HEADING, SUBHEADING, directory_row, figure_list
from matplotlib.figure import Figure

DEFAULT_DIRECTORY = "results/live"
TWIN_DPI = 80
#: Vehicles drawn in the estimate-against-truth figure (those with the largest error).
VEHICLES_DRAWN = 3
#: twin.json keys shown in the divergence table, with their units.
SHOWN = {
    "soc_error_mean": "fraction",
    "soc_error_max": "fraction",
    "state_mismatches": "count",
    "state_mismatch_share": "fraction",
    "states_applied": "count",
    "duplicates": "count",
    "out_of_order": "count",
    "stale_vehicles_now": "count",
    "failed_actions": "count",
    "commands_sent": "count",
    "plans": "count",
    "plan_fallbacks": "count",
    "control_latency_s_median": "s",
    "control_latency_s_p95": "s",
}


class TwinDirError(ValueError):
    """The directory holds no readable twin output."""


@dataclass
class TwinRun:
    """A twin's outputs, ready to show."""

    directory: Path
    metrics: pd.DataFrame
    estimates: pd.DataFrame
    truth_error: pd.DataFrame | None = None
    figures: dict[str, bytes] = field(default_factory=dict)


def _twin_dir(directory: Path) -> Path:
    for candidate in (directory, directory / "twin"):
        if (candidate / "twin.json").is_file():
            return candidate
    raise TwinDirError(
        f"{directory} has no twin.json (nor twin/twin.json): write one with "
        "`agentev twin --inprocess --out DIR` or `agentev twin --broker URL --out DIR`"
    )


def load_twin(directory: str | Path) -> TwinRun:
    """Read a twin's outputs (and the plant's beside them).

    Raises:
        TwinDirError: no directory, no ``twin.json``, or unreadable files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise TwinDirError(f"No directory {directory}")
    twin = _twin_dir(directory)
    try:
        summary = json.loads((twin / "twin.json").read_text())
        estimates = pd.read_csv(twin / "twin_estimates.csv")
    except (OSError, ValueError) as exc:
        raise TwinDirError(f"cannot read the twin's files in {twin}: {exc}") from None
    missing = {"time_min", "vehicle_id", "soc_estimate", "stale"} - set(estimates.columns)
    if missing:
        raise TwinDirError(f"{twin / 'twin_estimates.csv'} lacks the columns {sorted(missing)}")
    rows = [(k, summary[k], unit) for k, unit in SHOWN.items() if k in summary]
    for reason, n in sorted(summary.get("rejected", {}).items()):
        rows.append((f"rejected: {reason}", n, "count"))
    metrics = pd.DataFrame(rows, columns=["metric", "value", "unit"])
    run = TwinRun(twin, metrics, estimates)
    plant = twin.parent / "plant" / "timeseries.csv"
    if plant.is_file():
        truth = pd.read_csv(plant, usecols=["time_min", "vehicle_id", "soc"])
        joined = truth.merge(estimates, on=["time_min", "vehicle_id"], how="inner")
        joined["error"] = joined["soc_estimate"] - joined["soc"]
        run.truth_error = joined
    run.figures = figures(run)
    return run


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=TWIN_DPI, bbox_inches="tight")
    return buf.getvalue()


def figures(run: TwinRun) -> dict[str, bytes]:
    """The tab's figures as PNG bytes, by title."""
    out: dict[str, bytes] = {}
    j = run.truth_error
    if j is None or not len(j):
        fig = Figure(figsize=(8, 3))
        ax = fig.add_subplot()
        for vid, g in run.estimates.groupby("vehicle_id"):
            ax.plot(g["time_min"] / 60.0, g["soc_estimate"], lw=1, label=f"vehicle {vid}")
        ax.set_xlabel("time (h)")
        ax.set_ylabel("estimated state of charge")
        out["The twin's state-of-charge estimates"] = _png(fig)
        return out
    worst = j.groupby("vehicle_id")["error"].apply(lambda e: e.abs().max())
    drawn = worst.sort_values(ascending=False).index[:VEHICLES_DRAWN]
    fig = Figure(figsize=(8, 3))
    ax = fig.add_subplot()
    for k, vid in enumerate(drawn):
        g = j[j["vehicle_id"] == vid]
        colour = f"C{k}"
        ax.plot(g["time_min"] / 60.0, g["soc"], color=colour, lw=1.5, label=f"plant, vehicle {vid}")
        ax.plot(
            g["time_min"] / 60.0,
            g["soc_estimate"],
            color=colour,
            lw=1,
            ls="--",
            label=f"twin, vehicle {vid}",
        )
    ax.set_xlabel("time (h)")
    ax.set_ylabel("state of charge")
    ax.legend(fontsize=7, ncol=2)
    out["Twin estimate against the plant (vehicles with the largest error)"] = _png(fig)
    per_minute = j.assign(abs_error=j["error"].abs()).groupby("time_min")["abs_error"].max()
    fig = Figure(figsize=(8, 2.5))
    ax = fig.add_subplot()
    ax.plot(per_minute.index / 60.0, per_minute.to_numpy(), lw=1, color="C3")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("largest |SoC error|")
    ax.set_ylim(bottom=0.0, top=max(float(np.max(per_minute.to_numpy())) * 1.1, 1e-3))
    out["Largest SoC error over the fleet, per minute"] = _png(fig)
    return out


@solara.component
def TwinPage(model=None):  # noqa: N802 (a component, named like a class)
    """The twin tab: a directory field, then the twin's divergence from the plant.

    A ``@solara.component`` (SolaraViz does not wrap it); ``model`` is ignored.
    """
    directory, set_directory = solara.use_state(DEFAULT_DIRECTORY)
    reloads, set_reloads = solara.use_state(0)

    def load():
        try:
            return load_twin(directory)
        except TwinDirError as exc:
            return exc

    result = solara.use_memo(load, [directory, reloads])
    with solara.Div(classes=["agentev-twin"], style=FILL_CELL) as page:
        solara.Text("Live twin: divergence from the plant", style=HEADING)
        directory_row(
            "Twin output directory", directory, set_directory, lambda: set_reloads(reloads + 1)
        )
        if isinstance(result, TwinDirError):
            solara.Error(str(result), classes=["agentev-twin-error"])
        else:
            j = result.truth_error
            if j is not None and len(j):
                info = (
                    f"{result.directory}: {result.estimates['vehicle_id'].nunique()} vehicles; "
                    f"twin estimate against the plant's state of charge over {len(j)} "
                    f"vehicle-minutes: largest |error| {j['error'].abs().max():.4f}, mean "
                    f"{j['error'].abs().mean():.5f}."
                )
            else:
                info = f"{result.directory}: no plant outputs beside it (plant/timeseries.csv)."
            solara.Text(info, classes=["agentev-twin-info"])
            solara.Text("Divergence and traffic (twin.json)", style=SUBHEADING)
            solara.DataFrame(result.metrics, items_per_page=25)
            figure_list(result.figures, "agentev-twin-figure")
    return page
