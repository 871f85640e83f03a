"""The live components of the twin's page: floor plan, charts, plan, messages and status.

Each view keeps its :class:`matplotlib.figure.Figure` objects (never pyplot) for the life of
a model and redraws them by *blitting*: axes, ticks, labels, legends, the walls and the
whole-day tariff are drawn once into a background; a step restores that background, draws
only the artists whose data change and encodes the PNG. Mesa's own ``SpaceRendererComponent``
instead clears the floor and draws everything again each step (grid lines, walls, agents, a
full canvas draw inside ``draw_agents`` and another for the PNG). Blitting is what keeps one
Step of the page well under 300 ms (``benchmarks/bench_viz.py``); a full redraw of a view
happens only when an axis must change (the backlog outgrows its axis, the plan's time
window moves on).

The page has four components. Solara re-renders the whole page once per component that
listens to Mesa's update counter (about 15 ms each here), so views are grouped rather than
split further.

The floor uses Mesa's portrayal API: a :class:`~mesa.visualization.SpaceRenderer` draws the
grid structure and the property layers (walls, parking) once, and every step its backend
collects each agent's :class:`~mesa.visualization.components.AgentPortrayalStyle` from
:func:`agent_portrayal`; the view moves its marker collections to those positions and
colours.

The charts read the run so far from the model's DataCollector (``model_vars`` lists, no
DataFrame) and, for the fleet's minimum and maximum state of charge, from the recorder's rows
incrementally (:class:`RunSeries`): a step costs the same at minute 10 and at minute 1400.

Every ``*_component(model)`` function is a plain function, not a ``@solara.component``:
SolaraViz wraps plain functions in a component that redraws after every step.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import reacton.ipywidgets as rw
import solara
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from mesa.visualization import SpaceRenderer
from mesa.visualization.components import AgentPortrayalStyle, PropertyLayerStyle
from PIL import Image

from agentev.agents.charger import Charger
from agentev.agents.vehicle import Vehicle, VehicleState
from agentev.agents.workstation import Workstation
from agentev.model import FactoryModel

#: Resolution of every live figure (dots per inch); the browser scales the images to fit.
DPI = 100
#: Width of the floor plan (inches); its height follows the map.
FLOOR_WIDTH_IN = 6.0
#: zlib level of the PNGs: 1 encodes several times faster than the default and the files of
#: these flat-coloured figures are barely larger.
PNG_COMPRESS_LEVEL = 1


# ----------------------------------------------------------------- blitting
class BlitFigure:
    """A figure redrawn by blitting: a cached background plus the artists that change.

    Args:
        fig: The figure; everything drawn on it before the first :meth:`png` that is not
            registered with :meth:`animate` becomes the background.
    """

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.canvas = FigureCanvasAgg(fig)
        self.dynamic: list[Artist] = []
        self._background = None

    def animate(self, *artists: Artist) -> None:
        """Register artists that :meth:`png` redraws every time (left out of the background)."""
        for artist in artists:
            artist.set_animated(True)
            self.dynamic.append(artist)

    def replace(self, old: Artist, new: Artist) -> None:
        """Swap a registered artist for a new one (``old`` is removed from the figure)."""
        self.dynamic[self.dynamic.index(old)] = new
        new.set_animated(True)
        old.remove()

    def invalidate(self) -> None:
        """Redraw the background next time (axis limits or labels changed)."""
        self._background = None

    def png(self) -> bytes:
        """The figure now, as PNG bytes."""
        if self._background is None:
            self.canvas.draw()  # lays out and draws everything but the animated artists
            # Keep the first layout: constrained layout would double every later redraw.
            self.fig.set_layout_engine("none")
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        else:
            self.canvas.restore_region(self._background)
        renderer = self.canvas.get_renderer()
        for artist in sorted(self.dynamic, key=Artist.get_zorder):  # stable: ties keep order
            if artist.get_visible():
                artist.draw(renderer)
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer(
            "RGBA", (width, height), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        )
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return out.getvalue()


def png_image(png: bytes, css_class: str, max_height_px: int):
    """A PNG as an image widget in a ``div.css_class``, scaled down to fit its cell.

    SolaraViz's grid cells are about 390 px high whatever the screen's width, so the image
    keeps its aspect ratio within the cell's width and ``max_height_px``.
    """
    layout = rw.Layout(
        width="auto", height="auto", max_width="100%", max_height=f"{max_height_px}px"
    )
    image = rw.Image(value=png, format="png", layout=layout)
    return solara.Div(children=[image], classes=[css_class])


# ----------------------------------------------------------------- floor plan
class Activity(StrEnum):
    """What a vehicle is doing, as the floor plan groups its :class:`VehicleState`."""

    IDLE = "idle"
    WORKING = "working"
    TO_CHARGER = "driving to charge"
    QUEUED = "queueing"
    CHARGING = "charging"


ACTIVITY: dict[VehicleState, Activity] = {
    VehicleState.IDLE: Activity.IDLE,
    VehicleState.TO_PARK: Activity.IDLE,
    VehicleState.TO_PICKUP: Activity.WORKING,
    VehicleState.WAIT_DOCK: Activity.WORKING,
    VehicleState.LOADING: Activity.WORKING,
    VehicleState.TO_DROPOFF: Activity.WORKING,
    VehicleState.UNLOADING: Activity.WORKING,
    VehicleState.TO_CHARGER: Activity.TO_CHARGER,
    VehicleState.QUEUED: Activity.QUEUED,
    VehicleState.CHARGING: Activity.CHARGING,
}
#: Marker of each activity; vehicles are filled by state of charge.
ACTIVITY_MARKERS: dict[Activity, str] = {
    Activity.IDLE: "o",
    Activity.WORKING: "^",
    Activity.TO_CHARGER: "P",
    Activity.QUEUED: "X",
    Activity.CHARGING: "*",
}
#: Vehicles are filled by state of charge, red (empty) to green (full).
SOC_CMAP = colormaps["RdYlGn"]
CHARGER_MARKER = "s"
WORKSTATION_MARKER = "p"
CHARGER_COLOR = "tab:blue"
FAILED_CHARGER_COLOR = "black"
WORKSTATION_COLOR = "tab:purple"
#: Port squares (drawn on the wall below each charger), by port status.
PORT_COLORS = {
    "busy": "tab:blue",
    "reserved": "orange",
    "free": "white",
    "failed": "black",
}
#: Colour of each floor property layer (see ``viz/app.py``'s ``FactoryViewModel``).
FLOOR_COLORS = {"blocked": "dimgray", "parking": "lightsteelblue"}
#: Width of the map (cells) that :func:`agent_portrayal`'s marker sizes are made for.
REFERENCE_MAP_CELLS = 32
#: Distance between neighbouring port squares of a charger (cells).
PORT_SPACING = 0.55


def port_slot(charger: Charger, port: int) -> tuple[float, float]:
    """Where the floor plan draws a charger's port: a row just below the charger (cells)."""
    x, y = charger.position
    return x + (port - (charger.num_ports - 1) / 2) * PORT_SPACING, y - 0.72


def vehicle_xy(vehicle: Vehicle) -> tuple[float, float]:
    """Where the floor plan draws a vehicle (cells).

    Its cell, except that a charging vehicle sits above its port and vehicles queueing at a
    charger line up above it, so that vehicles sharing a charger's cell stay visible.
    """
    x, y = vehicle.position
    charger = vehicle.charger
    if vehicle.state is VehicleState.CHARGING and charger is not None and vehicle.port is not None:
        return port_slot(charger, vehicle.port)[0], float(y)
    if vehicle.state is VehicleState.QUEUED:
        for c in vehicle.model.chargers.values():
            if c.position == (x, y) and vehicle in c.queue:
                return float(x), y + 0.45 * (c.queue.index(vehicle) + 1)
    return float(x), float(y)


def marker_scale(model) -> float:
    """Marker areas relative to the built-in 32 x 13 maps: smaller cells, smaller markers."""
    layout = model.layout
    return (REFERENCE_MAP_CELLS / max(layout.width, layout.height)) ** 2


def agent_portrayal(agent) -> AgentPortrayalStyle:
    """Vehicles by activity (marker) and state of charge (colour); chargers and stations.

    Marker areas (points squared) are for the built-in 32-cell-wide maps; see
    :func:`marker_scale`.
    """
    scale = marker_scale(agent.model)
    match agent:
        case Vehicle():
            x, y = vehicle_xy(agent)
            activity = ACTIVITY[agent.state]
            return AgentPortrayalStyle(
                x=x,
                y=y,
                color=to_hex(SOC_CMAP(agent.soc)),
                marker=ACTIVITY_MARKERS[activity],
                size=scale * (90 if activity is Activity.CHARGING else 50),
                zorder=4,
                edgecolors="black",
                linewidths=0.6,
            )
        case Charger():
            color = FAILED_CHARGER_COLOR if agent.failed else CHARGER_COLOR
            x, y = agent.position
            return AgentPortrayalStyle(
                x=x,
                y=y,
                color=color,
                marker=CHARGER_MARKER,
                size=scale * 110,
                zorder=2,
                edgecolors=color,
                linewidths=0.6,
            )
        case Workstation():
            x, y = agent.position
            return AgentPortrayalStyle(
                x=x,
                y=y,
                color=WORKSTATION_COLOR,
                marker=WORKSTATION_MARKER,
                size=scale * 80,
                zorder=2,
                edgecolors=WORKSTATION_COLOR,
                linewidths=0.6,
            )
    raise TypeError(f"no portrayal for {type(agent).__name__}")


def floor_portrayal(layer) -> PropertyLayerStyle:
    """Walls and parking places as flat colours."""
    return PropertyLayerStyle(
        color=FLOOR_COLORS[layer.name], alpha=1.0, vmin=0, vmax=1, colorbar=False
    )


def make_renderer(model) -> SpaceRenderer:
    """Mesa's SpaceRenderer for the floor, with this module's portrayals (nothing drawn yet).

    The model needs a ``grid`` with the ``blocked`` and ``parking`` property layers (see
    ``viz/app.py``'s ``FactoryViewModel``).
    """
    renderer = SpaceRenderer(model, backend="matplotlib")
    renderer.setup_structure(color="0.8", linestyle="-", linewidth=0.3)
    renderer.setup_propertylayer(floor_portrayal)
    return renderer.setup_agents(agent_portrayal)


def floor_legend_handles() -> list[Artist]:
    """Legend entries of the floor plan."""
    handles: list[Artist] = [
        Line2D([], [], ls="", marker=m, color="lightgray", mec="black", ms=5, label=a.value)
        for a, m in ACTIVITY_MARKERS.items()
    ]
    handles += [
        Line2D([], [], ls="", marker=CHARGER_MARKER, color=CHARGER_COLOR, ms=6, label="charger"),
        Line2D(
            [], [], ls="", marker=CHARGER_MARKER, color=FAILED_CHARGER_COLOR, ms=6, label="failed"
        ),
    ]
    handles += [
        Line2D([], [], ls="", marker="s", mfc=c, mec="black", ms=3.5, label=f"port {status}")
        for status, c in PORT_COLORS.items()
        if status != "failed"
    ]
    handles += [
        Line2D(
            [],
            [],
            ls="",
            marker=WORKSTATION_MARKER,
            color=WORKSTATION_COLOR,
            ms=6,
            label="station (n jobs waiting)",
        ),
        Patch(color=FLOOR_COLORS["parking"], label="parking"),
        Patch(color=FLOOR_COLORS["blocked"], label="wall / machine"),
    ]
    return handles


class FloorView:
    """The factory floor, drawn from Mesa's portrayal of every agent.

    Walls, parking, stations with their waiting jobs, chargers with their ports, vehicles
    by activity and state of charge, legend and colour bar.

    Args:
        model: A model with a ``grid`` carrying the floor's property layers.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.renderer = make_renderer(model)
        ax = self.renderer.canvas
        fig = ax.get_figure()
        layout = model.layout
        width_in = FLOOR_WIDTH_IN
        fig.set_size_inches(width_in, width_in * 0.9 * layout.height / layout.width + 1.0)
        fig.set_dpi(DPI)
        scale = marker_scale(model)
        # Static: Mesa draws the grid lines and the property layers once.
        self.renderer.draw_structure()
        self.renderer.draw_propertylayer()
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.legend(
            handles=floor_legend_handles(),
            loc="outside lower center",
            ncols=5,
            fontsize=6,
            frameon=False,
            columnspacing=1.0,
            handletextpad=0.3,
        )
        colorbar = fig.colorbar(
            ScalarMappable(Normalize(0.0, 1.0), SOC_CMAP),
            ax=ax,
            orientation="vertical",
            fraction=0.03,
            pad=0.01,
            aspect=15,
        )
        colorbar.set_label("state of charge", fontsize=7)
        colorbar.ax.tick_params(labelsize=6)
        self.blit = BlitFigure(fig)
        # Dynamic: one marker collection per marker shape, moved every step.
        markers = [*ACTIVITY_MARKERS.values(), CHARGER_MARKER, WORKSTATION_MARKER]
        self.markers = {m: ax.scatter([], [], marker=m) for m in markers}
        self.chargers = list(model.chargers.values())
        slots = [port_slot(c, p) for c in self.chargers for p in range(c.num_ports)]
        self.ports = ax.scatter(
            *np.array(slots).T,
            marker="s",
            s=scale * 16,
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
        )
        label_box = {"boxstyle": "round,pad=0.12", "fc": "white", "lw": 0.5}
        self.stations = list(model.stations.values())
        self.waiting = [
            ax.text(
                s.position[0] + 0.35,
                s.position[1] + 0.35,
                "",
                fontsize=5.5,
                zorder=5,
                bbox={**label_box, "ec": WORKSTATION_COLOR},
            )
            for s in self.stations
        ]
        self.queues = [
            ax.text(
                c.position[0] + 0.4,
                c.position[1] + 0.3,
                "",
                fontsize=5.5,
                zorder=5,
                bbox={**label_box, "ec": CHARGER_COLOR},
            )
            for c in self.chargers
        ]
        self.blit.animate(*self.markers.values(), self.ports, *self.waiting, *self.queues)

    def update(self) -> None:
        """Move every marker and label to the model's state now."""
        backend = self.renderer.backend_renderer
        data = backend.collect_agent_data(
            self.renderer.space, agent_portrayal, default_size=self.renderer.space_drawer.s_default
        )
        loc = data["loc"].astype(float).reshape(-1, 2)
        for marker, collection in self.markers.items():
            mask = data["marker"] == marker
            collection.set_offsets(loc[mask])
            collection.set_sizes(data["s"][mask])
            collection.set_facecolors(data["c"][mask])
            collection.set_edgecolors(data["edgecolors"][mask])
            collection.set_linewidths(data["linewidths"][mask])
            if mask.any():
                collection.set_zorder(int(data["zorder"][mask][0]))
        colors = []
        for c in self.chargers:
            for p in range(c.num_ports):
                if c.failed:
                    status = "failed"
                elif c.occupant[p] is not None:
                    status = "busy"
                elif c.reserved[p] is not None:
                    status = "reserved"
                else:
                    status = "free"
                colors.append(PORT_COLORS[status])
        self.ports.set_facecolors(colors)
        for text, station in zip(self.waiting, self.stations, strict=True):
            text.set_text(str(station.waiting))
            text.set_visible(station.waiting > 0)
        for text, charger in zip(self.queues, self.chargers, strict=True):
            text.set_text(f"+{len(charger.queue)}")
            text.set_visible(bool(charger.queue))

    def png(self) -> bytes:
        """The floor now, as PNG bytes."""
        self.update()
        return self.blit.png()


# ----------------------------------------------------------------- status
def clock(minutes: float) -> str:
    """Time of day of a model time in minutes, with the day after the first: ``day 2 06:05``."""
    day, minute = divmod(int(minutes), 24 * 60)
    hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
    return hhmm if day == 0 else f"day {day + 1} {hhmm}"


def status_line(model: FactoryModel) -> str:
    """Model time and tasks completed, as one line."""
    t = model.time
    return f"t = {t:g} min ({clock(t)}) · tasks completed: {model.tasks_completed}"


def detail_line(model: FactoryModel) -> str:
    """Scenario, strategy and the fleet now, as one line."""
    cfg = model.config
    counts = dict.fromkeys(Activity, 0)
    for v in model.vehicles:
        counts[ACTIVITY[v.state]] += 1
    fleet = ", ".join(f"{n} {a.value}" for a, n in counts.items() if n)
    return (
        f"{model.scenario_name} · {cfg.strategy} · seed {model.seed} · "
        f"backlog {len(model.dispatcher.backlog)} jobs · {fleet}"
    )


# ----------------------------------------------------------------- charts
class RunSeries:
    """The run so far, one value per minute, without rebuilding DataFrames.

    DataCollector columns come straight from ``datacollector.model_vars`` (one row at
    ``t = 0``, then one per step). The fleet's minimum and maximum state of charge are read
    from the recorder's per-vehicle rows, only the rows added since the last call.

    Args:
        model: The model.
    """

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.n_vehicles = len(model.vehicles)
        self._cursor = 0
        self._soc_min: list[float] = []
        self._soc_max: list[float] = []

    def column(self, name: str) -> np.ndarray:
        """A DataCollector model reporter's values so far."""
        return np.asarray(self.model.datacollector.model_vars[name], dtype=float)

    def soc_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The fleet's lowest and highest state of charge per minute so far."""
        rows = self.model.recorder.rows
        n = self.n_vehicles
        end = self._cursor + (len(rows) - self._cursor) // n * n
        if end > self._cursor:
            soc = np.fromiter((r[3] for r in rows[self._cursor : end]), float).reshape(-1, n)
            self._soc_min.extend(soc.min(axis=1).tolist())
            self._soc_max.extend(soc.max(axis=1).tolist())
            self._cursor = end
        return np.asarray(self._soc_min), np.asarray(self._soc_max)


def _nice_ceiling(value: float) -> float:
    """A round axis limit at least ``value``: 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= value)


def max_site_power_kw(model: FactoryModel) -> float:
    """The most the site can draw (kW).

    The highest base load plus every port at full power, capped by the grid connection limit.
    """
    tariff = model.tariff
    base = max(tariff.base_load_kw(t) for t in range(0, model.duration_min + 1, 60))
    fastest = max(v.vtype.max_charge_power_kw for v in model.vehicles)
    ports = sum(c.num_ports * min(c.power_kw, fastest) for c in model.chargers.values())
    limit = model.config.site.grid_limit_kw
    return base + ports if limit is None else min(base + ports, limit)


#: DataCollector columns the charts read (see ``agentev.model.MODEL_REPORTERS``).
CHART_COLUMNS = (
    "mean_soc",
    "site_power_kw",
    "price_per_kwh",
    "tasks_completed",
    "task_backlog",
    "vehicles_charging",
    "vehicles_queued",
)


def _panel(title: str, hours: float, ylabel: str) -> tuple[Figure, Axes]:
    """One chart of :class:`ChartsView`: the run's time axis (hours), fixed margins."""
    # Fixed margins: constrained layout would double the first draw (at every Reset).
    fig = Figure(figsize=(3.0, 2.1), dpi=DPI)
    fig.subplots_adjust(left=0.16, right=0.84, bottom=0.17, top=0.89)
    ax = fig.subplots()
    ax.set_title(title, fontsize=8)
    ax.set_xlim(0.0, hours)
    ax.set_xlabel("time (h)", fontsize=6.5, labelpad=1)
    ax.set_ylabel(ylabel, fontsize=6.5, labelpad=2)
    ax.grid(alpha=0.3, lw=0.5)
    ax.tick_params(labelsize=6, pad=1.5)
    return fig, ax


def _twin(ax: Axes, ylabel: str) -> Axes:
    twin = ax.twinx()
    twin.set_ylabel(ylabel, fontsize=6.5, labelpad=2)
    twin.tick_params(labelsize=6, pad=1.5)
    return twin


class ChartsView:
    """Four live charts over the whole run's time axis (hours), one figure each.

    Fleet state of charge (mean with its min-max band); site power with the energy price
    (whole-day tariff dotted, the run so far solid); tasks completed with the backlog; vehicles
    queueing for a charger (and charging). Separate figures, so that an axis the data
    outgrows (the backlog's) redraws one small background, not all four.

    Args:
        model: The model.
    """

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.series = RunSeries(model)
        hours = model.duration_min / 60.0

        fig, ax = _panel("Fleet state of charge", hours, "state of charge")
        ax.set_ylim(0.0, 1.0)
        ax.axhline(
            model.config.charge_threshold, color="0.4", ls=":", lw=0.8, label="charge threshold"
        )
        self.soc_band = ax.fill_between(
            [0.0], [0.0], [0.0], color="tab:green", alpha=0.25, lw=0, label="min-max"
        )
        (self.soc_mean,) = ax.plot([], [], color="tab:green", lw=1.2, label="mean")
        ax.legend(loc="lower left", fontsize=5, ncols=3)
        self.soc = BlitFigure(fig)
        self.soc.animate(self.soc_band, self.soc_mean)

        fig, ax = _panel("Site power and energy price", hours, "site power (kW)")
        limit = model.config.site.grid_limit_kw
        self.power_top = _nice_ceiling(1.05 * max_site_power_kw(model))
        ax.set_ylim(0.0, self.power_top)
        if limit is not None:
            ax.axhline(limit, color="tab:red", ls="--", lw=0.8, label="grid limit")
        (self.power,) = ax.plot([], [], color="tab:blue", lw=1.0, label="site power")
        price_ax = _twin(ax, "price (currency/kWh)")
        minutes = np.arange(model.duration_min + 1)
        prices = np.array([model.tariff.price(int(t)) for t in minutes])
        price_ax.step(minutes / 60.0, prices, where="pre", color="0.6", ls=":", lw=0.8)
        price_ax.set_ylim(0.0, 1.15 * float(prices.max()) if prices.max() > 0 else 1.0)
        (self.price,) = price_ax.step([], [], where="pre", color="0.2", lw=1.0, label="price")
        ax.legend(handles=[*ax.get_lines(), self.price], loc="upper left", fontsize=5, ncols=3)
        self.power_ax = ax
        self.site = BlitFigure(fig)
        self.site.animate(self.power, self.price)

        fig, ax = _panel("Tasks", hours, "completed")
        ax.set_ylim(0.0, _nice_ceiling(max(10, len(model.task_trace))))
        (self.completed,) = ax.plot([], [], color="tab:purple", lw=1.2, label="completed")
        self.backlog_ax = _twin(ax, "backlog (jobs)")
        self.backlog_top = 10.0
        self.backlog_ax.set_ylim(0.0, self.backlog_top)
        (self.backlog,) = self.backlog_ax.step(
            [], [], where="pre", color="tab:orange", lw=1.0, label="backlog"
        )
        ax.legend(handles=[self.completed, self.backlog], loc="upper left", fontsize=5)
        self.tasks = BlitFigure(fig)
        self.tasks.animate(self.completed, self.backlog)

        fig, ax = _panel("Charger queue", hours, "vehicles")
        ax.set_ylim(0.0, len(model.vehicles) + 0.5)
        (self.charging,) = ax.step(
            [], [], where="pre", color="tab:blue", lw=0.8, alpha=0.6, label="charging"
        )
        (self.queued,) = ax.step([], [], where="pre", color="tab:red", lw=1.2, label="queueing")
        ax.legend(loc="upper left", fontsize=5, ncols=2)
        self.queue = BlitFigure(fig)
        self.queue.animate(self.charging, self.queued)

    @property
    def figures(self) -> tuple[BlitFigure, ...]:
        """The four charts, in display order."""
        return self.soc, self.site, self.tasks, self.queue

    def update(self) -> None:
        """Set every line to the run so far (and widen an axis the data outgrew)."""
        s = self.series
        # One length for every series: while Play steps the model in its thread, another
        # redraw (a click elsewhere on the page) may read the columns between two appends.
        columns = {name: s.column(name) for name in CHART_COLUMNS}
        low, high = s.soc_range()
        n = min(len(low), *(len(c) for c in columns.values()))
        c = {name: values[:n] for name, values in columns.items()}
        hours = np.arange(n) / 60.0
        self.soc_band.set_data(hours, low[:n], high[:n])
        self.soc_mean.set_data(hours, c["mean_soc"])
        self.power.set_data(hours[1:], c["site_power_kw"][1:])  # row 0 (t = 0): no minute yet
        self.price.set_data(hours[1:], c["price_per_kwh"][1:])
        self.completed.set_data(hours, c["tasks_completed"])
        self.backlog.set_data(hours, c["task_backlog"])
        self.charging.set_data(hours, c["vehicles_charging"])
        self.queued.set_data(hours, c["vehicles_queued"])
        if n and c["site_power_kw"].max() > self.power_top:
            self.power_top = _nice_ceiling(1.2 * c["site_power_kw"].max())
            self.power_ax.set_ylim(0.0, self.power_top)
            self.site.invalidate()
        if n and c["task_backlog"].max() > self.backlog_top:
            self.backlog_top = _nice_ceiling(1.2 * c["task_backlog"].max())
            self.backlog_ax.set_ylim(0.0, self.backlog_top)
            self.tasks.invalidate()

    def pngs(self) -> list[bytes]:
        """The four charts now, as PNG bytes."""
        self.update()
        return [figure.png() for figure in self.figures]


# ----------------------------------------------------------------- plan (Gantt)
@dataclass(frozen=True)
class Slot:
    """One bar of the plan chart: a vehicle's charging slot (times in minutes)."""

    vehicle_id: int
    start_min: float
    end_min: float
    charger_id: str | None
    kind: str  # "planned" (the controller's plan) or "negotiated" (a booked slot)


def negotiated_slots(strategy) -> list[Slot]:
    """Open bookings of the negotiation protocol (``negotiation``, ``intelligent``'s net)."""
    protocol = strategy if hasattr(strategy, "desks") else getattr(strategy, "protocol", None)
    desks = getattr(protocol, "desks", None) or {}
    return [
        Slot(b.vehicle_id, b.start_min, b.end_min, b.charger_id, "negotiated")
        for desk in desks.values()
        for b in desk.book.open_bookings()
    ]


def planned_slots(model: FactoryModel) -> list[Slot]:
    """The controller's current plan, one slot per planned charging session.

    ``intelligent`` keeps per-vehicle bookings (``strategy.bookings``). The ``hindsight``
    (``strategy.offline``) executes its whole-run plan by dispatch, without bookings: its
    slots are the plan's plugged-in periods of the plan's (fleet-level) vehicles.
    """
    strategy = model.strategy
    if not getattr(strategy, "offline", False):
        return [
            Slot(vid, b.start_min, b.end_min, b.charger_id, "planned")
            for vid, sessions in (getattr(strategy, "bookings", None) or {}).items()
            for b in sessions
        ]
    plan = getattr(strategy, "plan", None)
    if plan is None:
        return []
    period = float(strategy.period_min)
    start = float(strategy.plan_start_min)
    slots = []
    for i, vehicle in enumerate(model.vehicles[: plan.plugged.shape[0]]):
        row = plan.plugged[i]
        k = 0
        while k < len(row):
            if not row[k]:
                k += 1
                continue
            k0 = k
            while k < len(row) and row[k]:
                k += 1
            port = plan.ports[i][k0] if plan.ports else None
            slots.append(
                Slot(
                    vehicle.unique_id,
                    start + k0 * period,
                    start + k * period,
                    None if port is None else port[0],
                    "planned",
                )
            )
    return slots


def has_plan(strategy) -> bool:
    """Whether a strategy plans or books charging slots ahead at all."""
    return any(hasattr(strategy, a) for a in ("bookings", "plan", "desks", "protocol"))


#: Vehicles the plan chart shows at most (the first ones).
PLAN_MAX_ROWS = 24
#: Entries per row of the plan chart's legend.
PLAN_LEGEND_COLUMNS = 8
#: Time shown by the plan chart (hours), and the jumps in which it follows the present.
PLAN_WINDOW_H = 10.0
PLAN_WINDOW_STEP_H = 2.0


class PlanView:
    """The controller's plan as a Gantt chart: vehicles x time, charging slots, now marked.

    Solid bars are the controller's plan, hatched bars slots negotiated with the chargers;
    the colour is the charger. A strategy that plans nothing ahead gets an empty chart that
    says so.

    Args:
        model: The model.
    """

    def __init__(self, model: FactoryModel) -> None:
        self.model = model
        self.planning = has_plan(model.strategy)
        self._offline: tuple | None = None  # (plan, its slots) of an offline strategy
        ids = [v.unique_id for v in model.vehicles[:PLAN_MAX_ROWS]]
        self.row = {vid: i for i, vid in enumerate(ids)}
        palette = colormaps["tab10"].colors
        self.colors = {cid: palette[i % 10] for i, cid in enumerate(model.chargers)}
        charger_entries = min(len(self.colors), 10)
        legend_rows = math.ceil((charger_entries + 3) / PLAN_LEGEND_COLUMNS)
        bottom = 0.4 + 0.15 * legend_rows  # inches: axis label and legend
        height = bottom + 0.3 + 0.19 * len(ids)  # inches: plus title and one row per vehicle
        fig = Figure(figsize=(6.0, height), dpi=DPI)
        fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.25 / height, bottom=bottom / height)
        ax = fig.subplots()
        self.ax = ax
        self.window = self._window(0.0)
        ax.set_xlim(*self.window)
        ax.set_ylim(len(ids) - 0.5, -0.5)
        ax.set_yticks(range(len(ids)), [f"V{vid}" for vid in ids], fontsize=6)
        ax.tick_params(axis="x", labelsize=6, pad=1.5)
        ax.tick_params(axis="y", pad=1.5)
        ax.set_xlabel("time (h)", fontsize=6.5, labelpad=1)
        ax.grid(axis="x", alpha=0.3, lw=0.5)
        shown = "" if len(ids) == len(model.vehicles) else f" (first {len(ids)} vehicles)"
        ax.set_title(f"Charging plan: {model.config.strategy}{shown}", fontsize=8, pad=3)
        handles = [
            Patch(color=c, label=cid) for cid, c in list(self.colors.items())[:charger_entries]
        ]
        handles += [
            Patch(fc="white", ec="black", label="planned"),
            Patch(fc="white", ec="black", hatch="////", label="negotiated"),
            Line2D([], [], color="tab:red", lw=1.2, label="now"),
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncols=min(len(handles), PLAN_LEGEND_COLUMNS),
            fontsize=5.5,
            frameon=False,
            columnspacing=1.0,
            handlelength=1.5,
        )
        self.planned = PolyCollection([], edgecolors="black", linewidths=0.4, zorder=2)
        self.negotiated = PolyCollection(
            [], edgecolors="black", linewidths=0.4, hatch="////", alpha=0.8, zorder=3
        )
        ax.add_collection(self.planned)
        ax.add_collection(self.negotiated)
        self.now = ax.axvline(0.0, color="tab:red", lw=1.0, zorder=4)
        message = "" if self.planning else f"no plan: {model.config.strategy} books no slots ahead"
        self.note = ax.text(
            0.5,
            0.5,
            message,
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.35",
            fontsize=8,
        )
        self.blit = BlitFigure(fig)
        self.blit.animate(self.planned, self.negotiated, self.now, self.note)
        self._slots: tuple[Slot, ...] | None = None

    def slots(self) -> tuple[Slot, ...]:
        """Every slot the chart shows now."""
        if not self.planning:
            return ()
        strategy = self.model.strategy
        if getattr(strategy, "offline", False):  # one whole-run plan: its slots never change
            plan = getattr(strategy, "plan", None)
            if self._offline is None or self._offline[0] is not plan:
                self._offline = (plan, planned_slots(self.model))
            planned = self._offline[1]
        else:
            planned = planned_slots(self.model)
        return tuple(planned + negotiated_slots(strategy))

    def _window(self, now_h: float) -> tuple[float, float]:
        """The time axis (hours) for the present ``now_h`` (hours).

        :data:`PLAN_WINDOW_H` from a little before now, moved in jumps of
        :data:`PLAN_WINDOW_STEP_H` so that the background is redrawn rarely.
        """
        total = self.model.duration_min / 60.0
        if total <= PLAN_WINDOW_H:
            return 0.0, total
        start = PLAN_WINDOW_STEP_H * (math.floor(now_h / PLAN_WINDOW_STEP_H) - 1)
        start = min(max(0.0, start), total - PLAN_WINDOW_H)
        return start, start + PLAN_WINDOW_H

    def update(self) -> None:
        """Bars for the current slots and the line at the present time."""
        now_h = self.model.time / 60.0
        self.now.set_xdata([now_h, now_h])
        window = self._window(now_h)
        if window != self.window:
            self.window = window
            self.ax.set_xlim(*window)
            self.blit.invalidate()
        try:
            slots = self.slots()
        except RuntimeError:  # a booking dict changed under Play's thread: keep the last bars
            return
        if slots != self._slots:
            self._slots = slots
            for collection, kind in ((self.planned, "planned"), (self.negotiated, "negotiated")):
                mine = [s for s in slots if s.kind == kind and s.vehicle_id in self.row]
                collection.set_verts([self._box(s) for s in mine])
                collection.set_facecolors([self.colors.get(s.charger_id, "0.7") for s in mine])
            if self.planning:
                self.note.set_text("" if slots else "no charging slots planned or booked")

    def _box(self, s: Slot) -> list[tuple[float, float]]:
        y = self.row[s.vehicle_id]
        x0, x1 = s.start_min / 60.0, s.end_min / 60.0
        return [(x0, y - 0.35), (x1, y - 0.35), (x1, y + 0.35), (x0, y + 0.35)]

    def png(self) -> bytes:
        """The plan now, as PNG bytes."""
        self.update()
        return self.blit.png()


# ----------------------------------------------------------------- messages
#: Message fields shown in the details column, in this order, when present.
DETAIL_FIELDS = ("charger_id", "port", "start_min", "end_min", "booking_id", "reason")
MAX_MESSAGE_ROWS = 12


def last_step_messages(model: FactoryModel, window_min: float = 1.0) -> list[dict[str, Any]]:
    """Messages sent in the last ``window_min`` minutes (the last step), oldest first."""
    messages = getattr(model.strategy, "messages", None) or []
    since = model.time - window_min
    recent = []
    for record in reversed(messages):  # the log is in sending order
        if record["sent_min"] <= since:
            break
        recent.append(record)
    return recent[::-1]


def _detail(record: dict[str, Any]) -> str:
    parts = []
    for key in DETAIL_FIELDS:
        if key in record:
            value = record[key]
            parts.append(f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def messages_html(model: FactoryModel) -> str:
    """The last step's negotiation messages as an HTML table (or a sentence saying none)."""
    messages = getattr(model.strategy, "messages", None)
    if messages is None:
        return f"<p>{html.escape(model.config.strategy)} exchanges no negotiation messages.</p>"
    recent = last_step_messages(model)
    head = f"<p>{len(recent)} message(s) in the last minute, {len(messages)} in the run so far.</p>"
    if not recent:
        return head
    rows = []
    for r in recent[-MAX_MESSAGE_ROWS:]:
        cells = (
            f"{r['sent_min']:.2f}",
            f"{r['delivered_min']:.2f}",
            r["type"],
            r["sender"],
            r["receiver"],
            r["vehicle_id"],
            _detail(r),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = "".join(
        f"<th>{h}</th>"
        for h in ("sent (min)", "delivered (min)", "type", "sender", "receiver", "vehicle", "")
    )
    more = len(recent) - MAX_MESSAGE_ROWS
    tail = f"<p>... and {more} more</p>" if more > 0 else ""
    return (
        f'{head}<table class="agentev-message-table"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{tail}"
    )


MESSAGE_CSS = """
.agentev-message-table { border-collapse: collapse; font-size: 12px; }
.agentev-message-table th, .agentev-message-table td {
  border-bottom: 1px solid #ddd; padding: 2px 6px; text-align: left; white-space: nowrap; }
"""


# ----------------------------------------------------------------- the page's components
def floor_component(model):
    """Status line, fleet summary and the floor plan."""
    view = solara.use_memo(lambda: FloorView(model), [model])
    png = view.png()
    with solara.Column(gap="2px") as column:
        solara.Text(status_line(model), classes=["agentev-status"])
        solara.Text(detail_line(model), classes=["agentev-detail"], style={"font-size": "12px"})
        png_image(png, "agentev-floor", 320)
    return column


def charts_component(model):
    """The live charts of the run so far, two by two."""
    view = solara.use_memo(lambda: ChartsView(model), [model])
    pngs = view.pngs()
    with solara.Div(classes=["agentev-charts"]) as charts:
        with solara.GridFixed(columns=2, column_gap="4px", row_gap="4px"):
            for png in pngs:
                png_image(png, "agentev-chart", 180)
    return charts


def plan_component(model):
    """The controller's plan as a Gantt chart."""
    view = solara.use_memo(lambda: PlanView(model), [model])
    return png_image(view.png(), "agentev-plan", 370)


def messages_component(model):
    """The negotiation messages of the last step."""
    with solara.Div(
        classes=["agentev-messages"], style={"height": "100%", "overflow": "auto"}
    ) as box:
        solara.Style(MESSAGE_CSS)
        solara.Text("Negotiation messages", style={"font-weight": "bold"})
        solara.HTML(tag="div", unsafe_innerHTML=messages_html(model))
    return box


#: The live components of the twin's page, in grid order.
LIVE_COMPONENTS = (floor_component, charts_component, plan_component, messages_component)
