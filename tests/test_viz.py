"""The Solara page in viz/app.py, rendered without a browser (``solara.render``)."""

import importlib.util
import sys
import time
from pathlib import Path

import ipyvuetify as v
import ipywidgets
import numpy as np
import pandas as pd
import pytest
import solara
from solara.components.datatable import DataTableWidget

from agentev.agents.vehicle import VehicleState
from agentev.experiments import ExperimentalFramework, stats
from agentev.model import FactoryModel
from agentev.strategies import STRATEGIES

VIZ = Path(__file__).resolve().parents[1] / "viz"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Minute at which the pages of the planning strategies are shown (heavy scenario, 3 h):
#: intelligent has bookings from 10 on; negotiation's is found by `first_message_min`.
SHOW_AT_MIN = {"intelligent": 9}


def load(name: str):
    # viz/ is a folder of scripts (served by `solara run viz/app.py`), not a package.
    spec = importlib.util.spec_from_file_location(f"agentev_viz_{name}", VIZ / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app():
    return load("app")


@pytest.fixture(scope="module")
def components(app):
    import components  # on sys.path since app.py was loaded

    return components


@pytest.fixture
def render():
    """solara.render, closing each page afterwards.

    Mesa's update counter is one global reactive: a page left open would redraw on every
    Step of the next test.
    """
    contexts = []

    def render(element):
        _, rc = solara.render(element, handle_error=False)
        contexts.append(rc)
        return rc

    yield render
    for rc in contexts:
        rc.close()


def render_page(app, render, model=None):
    """Render the page in an AppLayout (SolaraViz puts its controls in the sidebar)."""
    model = solara.reactive(model if model is not None else app.FactoryViewModel())
    rc = render(solara.AppLayout(children=[app.make_page(model)]))
    return model, rc


def click(rc, label: str) -> None:
    rc.find(v.Btn, children=[label]).widget.click()


def status_text(rc) -> str:
    return rc.find(v.Html, class_="agentev-status").widget.children[0]


def pngs(rc, css_class: str) -> list[bytes]:
    images = rc.find(v.Html, class_=css_class).find(ipywidgets.Image).widgets
    return [bytes(image.value) for image in images]


def messages_html(rc) -> str:
    box = rc.find(v.Html, class_="agentev-messages")
    return box.find(solara.widgets.HTML).widget.unsafe_innerHTML


# ----------------------------------------------------------------- the live page
def test_step_advances_one_minute_and_updates_the_status_line(app, render):
    model, rc = render_page(app, render)
    assert model.value.time == 0
    assert status_text(rc) == "t = 0 min (00:00) · tasks completed: 0"

    click(rc, "Step")

    assert model.value.time == 1
    assert model.value.steps == 1
    assert status_text(rc) == "t = 1 min (00:01) · tasks completed: 0"


def test_reset_rebuilds_the_model_from_every_control(app, render):
    model, rc = render_page(app, render)
    first = model.value
    click(rc, "Step")
    click(rc, "Step")
    assert first.time == 2

    rc.find(v.Select, label="Scenario").widget.v_model = "heavy"
    rc.find(v.Select, label="Charging strategy").widget.v_model = "negotiation"
    rc.find(v.Slider, label="Vehicles").widget.v_model = 5
    rc.find(v.Slider, label="Chargers").widget.v_model = 2
    rc.find(v.Slider, label="alpha_energy").widget.v_model = 0.7
    rc.find(v.Slider, label="alpha_downtime").widget.v_model = 0.2
    rc.find(v.Slider, label="alpha_utilization").widget.v_model = 0.1
    seed = rc.find(v.TextField, label="Seed").widget
    seed.v_model = "7"
    seed.fire_event("keyup.enter", None)  # the seed box takes its text on Enter or blur
    click(rc, "Reset")

    rebuilt = model.value
    assert rebuilt is not first
    assert rebuilt.time == 0
    assert rebuilt.scenario_name == "heavy"
    assert rebuilt.config.strategy == "negotiation"
    assert len(rebuilt.vehicles) == 5
    assert len(rebuilt.chargers) == 2
    weights = rebuilt.config.controller
    assert (weights.alpha_energy, weights.alpha_downtime, weights.alpha_utilization) == (
        0.7,
        0.2,
        0.1,
    )
    assert rebuilt.seed == 7
    assert status_text(rc) == "t = 0 min (00:00) · tasks completed: 0"
    # the components follow the new model: the plan chart is negotiation's now
    click(rc, "Step")
    assert status_text(rc) == "t = 1 min (00:01) · tasks completed: 0"
    assert "0 in the run so far" in messages_html(rc)


def test_render_interval_lets_step_and_play_advance_several_minutes_per_redraw(app, render):
    model, rc = render_page(app, render)
    rc.find(v.Slider, label="Render Interval (steps)").widget.v_model = 5
    click(rc, "Step")
    assert model.value.time == 5
    assert status_text(rc) == "t = 5 min (00:05) · tasks completed: 0"

    rc.find(v.Slider, label="Play Interval (ms)").widget.v_model = 1
    click(rc, "▶")
    deadline = time.monotonic() + 20
    while model.value.time < 15 and time.monotonic() < deadline:
        time.sleep(0.05)
    click(rc, "❚❚")
    time.sleep(0.5)  # let the play thread finish its current redraw
    reached = model.value.time
    assert reached >= 15
    assert status_text(rc).startswith(f"t = {reached:g} min")


def test_seed_typed_in_the_seed_box_becomes_an_int(app):
    assert app.FactoryViewModel(rng="7").seed == 7
    assert app.FactoryViewModel(rng=7).seed == 7
    with pytest.raises(ValueError, match="whole number"):
        app.FactoryViewModel(rng="seven")


def heavy(app, strategy: str, minutes: int = 0):
    """The heavy scenario over 3 h, run for ``minutes``."""
    model = app.FactoryViewModel("heavy", strategy=strategy, duration_h=3)
    if minutes:
        model.run_for(minutes)
    return model


@pytest.fixture(scope="module")
def first_message_min(app) -> int:
    """The minute whose step sends negotiation's first messages (heavy, 3 h, seed 42)."""
    model = heavy(app, "negotiation")
    while not model.strategy.messages:
        model.step()
        assert model.time < 180, "no negotiation in 3 h of the heavy scenario"
    return int(model.time)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_component_renders_for_each_strategy(
    app, components, render, first_message_min, strategy
):
    # heavy, 3 h: the oracle solves its whole-run plan at construction (about a second)
    show_at = {**SHOW_AT_MIN, "negotiation": first_message_min - 1}.get(strategy, 30)
    built = heavy(app, strategy, show_at)
    model, rc = render_page(app, render, built)
    click(rc, "Step")

    assert status_text(rc) == components.status_line(model.value)
    assert rc.find(v.Html, class_="agentev-detail").widget.children[0].startswith("heavy · ")
    for css_class, count in (("agentev-floor", 1), ("agentev-charts", 4), ("agentev-plan", 1)):
        images = pngs(rc, css_class)
        assert len(images) == count
        assert all(image.startswith(PNG_SIGNATURE) for image in images)
    table = messages_html(rc)
    if strategy in ("negotiation", "intelligent", "hindsight"):
        assert "in the run so far" in table
    else:
        assert "exchanges no negotiation messages" in table
    if strategy == "negotiation":  # its first calls for proposals, sent in the last minute
        sent = components.last_step_messages(model.value)
        assert sent and {m["type"] for m in sent} == {"cfp"}
        assert table.count("<td>cfp</td>") == len(sent)


# ----------------------------------------------------------------- the views, unit by unit
def test_floor_draws_every_agent_port_and_waiting_job(app, components, first_message_min):
    model = heavy(app, "negotiation", first_message_min + 30)
    view = components.FloorView(model)
    assert view.png().startswith(PNG_SIGNATURE)

    drawn = sum(len(c.get_offsets()) for c in view.markers.values())
    assert drawn == len(model.vehicles) + len(model.chargers) + len(model.stations)
    assert len(view.ports.get_offsets()) == model.num_ports
    busy = sum(c.busy_ports for c in model.chargers.values())
    blue = np.isclose(view.ports.get_facecolors(), (0.12, 0.47, 0.71, 1.0), atol=0.01).all(axis=1)
    assert blue.sum() == busy > 0
    stars = view.markers[components.ACTIVITY_MARKERS[components.Activity.CHARGING]]
    charging = [x for x in model.vehicles if x.state is VehicleState.CHARGING]
    assert len(stars.get_offsets()) == len(charging)
    for vehicle in charging:  # above its own port
        assert (
            components.vehicle_xy(vehicle)[0]
            == components.port_slot(vehicle.charger, vehicle.port)[0]
        )
    shown = [t.get_text() for t in view.waiting if t.get_visible()]
    assert shown == [str(s.waiting) for s in model.stations.values() if s.waiting]


def test_charts_hold_the_datacollector_series_and_the_fleet_soc_range(app, components):
    model = app.FactoryViewModel(duration_h=2)
    view = components.ChartsView(model)
    view.pngs()
    model.run_for(20)
    view.pngs()  # reads the recorder's rows in two pieces
    model.run_for(25)
    pngs = view.pngs()

    assert len(pngs) == 4 and all(p.startswith(PNG_SIGNATURE) for p in pngs)
    collected = model.datacollector.get_model_vars_dataframe()
    assert np.array_equal(view.soc_mean.get_ydata(), collected["mean_soc"].to_numpy())
    assert np.array_equal(view.completed.get_ydata(), collected["tasks_completed"].to_numpy())
    assert np.array_equal(view.queued.get_ydata(), collected["vehicles_queued"].to_numpy())
    assert np.array_equal(view.power.get_ydata(), collected["site_power_kw"].to_numpy()[1:])
    low, high = view.series.soc_range()
    by_minute = model.recorder.timeseries().groupby("time_min")["soc"]
    assert np.allclose(low, by_minute.min().to_numpy(), rtol=0, atol=0)
    assert np.allclose(high, by_minute.max().to_numpy(), rtol=0, atol=0)
    assert len(low) == len(collected) == 46


def test_plan_chart_shows_the_intelligent_bookings_and_the_present(app, components):
    # a whole day (in a 3 h run that starts off-peak nothing is worth charging: the run's
    # stored energy is valued at its mean price, the off-peak price); seed 42's first
    # bookings come with the re-plan at 02:00
    model = app.FactoryViewModel("heavy", strategy="intelligent", duration_h=24)
    model.run_for(130)
    view = components.PlanView(model)
    assert view.png().startswith(PNG_SIGNATURE)

    planned = [s for s in view.slots() if s.kind == "planned"]
    bookings = model.strategy.bookings
    assert planned and len(planned) == sum(len(b) for b in bookings.values())
    for slot in planned:
        assert any(
            (b.start_min, b.end_min, b.charger_id)
            == (slot.start_min, slot.end_min, slot.charger_id)
            for b in bookings[slot.vehicle_id]
        )
    assert len(view.planned.get_paths()) == len(planned)
    assert view.now.get_xdata()[0] == pytest.approx(130 / 60)
    assert view.note.get_text() == ""


def test_plan_chart_shows_negotiated_slots_or_says_there_is_no_plan(
    app, components, first_message_min
):
    negotiation = heavy(app, "negotiation", first_message_min + 10)
    view = components.PlanView(negotiation)
    view.png()
    booked = [b for desk in negotiation.strategy.desks.values() for b in desk.book.open_bookings()]
    assert booked and len(view.negotiated.get_paths()) == len(booked)
    assert {s.kind for s in view.slots()} == {"negotiated"}

    fcfs = components.PlanView(heavy(app, "fcfs", 5))
    fcfs.png()
    assert fcfs.slots() == ()
    assert fcfs.note.get_text() == "no plan: fcfs books no slots ahead"


def test_plan_window_follows_the_present_in_jumps(app, components):
    model = app.FactoryViewModel(duration_h=24)
    view = components.PlanView(model)
    assert view._window(0.0) == (0.0, 10.0)
    assert view._window(3.9) == (0.0, 10.0)
    assert view._window(5.0) == (2.0, 12.0)
    assert view._window(23.5) == (14.0, 24.0)


def test_last_step_messages_are_those_sent_in_the_last_minute(app, components, first_message_min):
    t = first_message_min
    model = heavy(app, "negotiation", t)
    sent = components.last_step_messages(model)
    assert sent and sent == [m for m in model.strategy.messages if t - 1 < m["sent_min"] <= t]
    for _ in range(3):
        model.step()
        t += 1
        assert components.last_step_messages(model) == [
            m for m in model.strategy.messages if t - 1 < m["sent_min"] <= t
        ]


def test_components_build_no_model_when_imported(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built at import")

    monkeypatch.setattr(FactoryModel, "__init__", refuse)
    load("components")
    load("campaign_page")


# ----------------------------------------------------------------- the campaign page
@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """light x (fcfs, negotiation) x 2 replications of 1 h, run in this process."""
    out = tmp_path_factory.mktemp("campaign")
    framework = ExperimentalFramework(output_dir=out, workers=1, progress=False)
    for strategy in ("fcfs", "negotiation"):
        for k in range(2):  # checkpointed here, so the campaign below starts no workers
            framework.run_single_simulation("light", strategy, 42 + k, 1, replication=k)
    framework.run_comprehensive_experiments(
        num_replications=2,
        scenarios=["light"],
        strategies=["fcfs", "negotiation"],
        simulation_time=1,
    )
    runs = pd.read_csv(out / "runs.csv")
    stats.summarize(runs).to_csv(out / "summary.csv", index=False)
    return out


def open_campaign_tab(app, render, directory) -> object:
    _, rc = render_page(app, render)
    rc.find(v.Tabs).widget.v_model = 1
    field = rc.find(v.TextField, label="Campaign directory").widget
    field.v_model = str(directory)
    field.fire_event("keyup.enter", None)
    return rc


def test_campaign_tab_shows_the_confidence_intervals_and_the_report_figures(
    app, render, campaign, monkeypatch
):
    monkeypatch.chdir(campaign.parent)  # "results" (the default) does not exist here
    rc = open_campaign_tab(app, render, campaign)

    info = rc.find(v.Html, class_="agentev-campaign-info").widget.children[0]
    assert "4 runs, 2-2 replications" in info and "summary.csv" in info
    summary = pd.read_csv(campaign / "summary.csv")
    table = rc.find(DataTableWidget).widget.items
    assert [row["strategy"] for row in table] == ["fcfs", "negotiation"]
    for row in table:
        s = summary[
            (summary["strategy"] == row["strategy"]) & (summary["metric"] == "energy_cost_total")
        ]
        mean, low, high = s[["mean", "ci_low", "ci_high"]].iloc[0]
        assert row["energy_cost_total (currency)"] == f"{mean:.4g} [{low:.4g}, {high:.4g}]"
    images = pngs(rc, "agentev-campaign-figure")
    assert len(images) == 5  # CIs, box plots, SoC, power and price, occupancy
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    assert not rc.find(v.Alert).widgets  # no error, no warning


def test_campaign_tab_explains_a_missing_or_malformed_directory(app, render, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = open_campaign_tab(app, render, tmp_path / "nowhere")

    def error() -> str:
        return rc.find(v.Alert, class_="agentev-campaign-error").widget.children[0]

    assert "No directory" in error() and "nowhere" in error()

    field = rc.find(v.TextField, label="Campaign directory").widget
    for directory, content, expected in (
        ("empty", None, "has no runs.csv"),
        ("malformed", "a,b\n1,2\n", "lacks the columns"),
        ("garbage", '"unclosed\n', "cannot read"),
    ):
        (tmp_path / directory).mkdir()
        if content is not None:
            (tmp_path / directory / "runs.csv").write_text(content)
        field.v_model = directory
        field.fire_event("keyup.enter", None)
        assert expected in error(), (directory, error())


# ----------------------------------------------------------------- the live twin's tab
def open_twin_tab(app, render, directory) -> object:
    _, rc = render_page(app, render)
    rc.find(v.Tabs).widget.v_model = 2
    field = rc.find(v.TextField, label="Twin output directory").widget
    field.v_model = str(directory)
    field.fire_event("keyup.enter", None)
    return rc


def test_twin_tab_shows_the_divergence_from_the_plant(app, render, tmp_path, monkeypatch):
    from agentev.twin import PlantOptions, run_inprocess

    plant, twin = run_inprocess(
        "light", seed=3, hours=1, options=PlantOptions(drop_rate=0.2), out=tmp_path / "live"
    )
    monkeypatch.chdir(tmp_path)  # "results/live" (the default) does not exist here
    rc = open_twin_tab(app, render, tmp_path / "live")
    info = rc.find(v.Html, class_="agentev-twin-info").widget.children[0]
    truth = pd.read_csv(tmp_path / "live" / "plant" / "timeseries.csv")
    est = pd.read_csv(tmp_path / "live" / "twin" / "twin_estimates.csv")
    joined = truth.merge(est, on=["time_min", "vehicle_id"])
    largest = (joined["soc_estimate"] - joined["soc"]).abs().max()
    assert f"over {len(joined)} vehicle-minutes: largest |error| {largest:.4f}" in info
    table = {row["metric"]: row["value"] for row in rc.find(DataTableWidget).widget.items}
    assert (
        float(table["states_applied"])
        == twin.mirror.counters.applied
        == (plant.counters.states_published)
    )
    assert float(table["soc_error_max"]) == pytest.approx(max(twin.mirror.counters.soc_errors))
    images = pngs(rc, "agentev-twin-figure")
    assert len(images) == 2 and all(i.startswith(PNG_SIGNATURE) for i in images)
    assert not rc.find(v.Alert).widgets

    field = rc.find(v.TextField, label="Twin output directory").widget
    field.v_model = str(tmp_path / "nowhere")
    field.fire_event("keyup.enter", None)
    error = rc.find(v.Alert, class_="agentev-twin-error").widget.children[0]
    assert "No directory" in error and "nowhere" in error
