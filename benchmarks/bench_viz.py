"""Speed of one Step of the interactive page (``viz/app.py``).

Renders the page with ``solara.render`` inside ``solara.AppLayout`` (no browser), as the
server does, advances the model to ``--start-min`` (a busy time of the day, so that the charts
hold hours of data), then clicks Step ``--steps`` times. A click returns when the model has
stepped and every component of the page has re-rendered on the server (figures drawn and
encoded as PNG, widgets updated), so the time of ``click()`` is the server's share of one
Step. Prints, per strategy, the median and 95th percentile per click against the 300 ms
target, and the same for the model step and each component (the rest is Solara/reacton's
own rendering). The image transfer to the browser and its drawing are not included.

Usage: ``python benchmarks/bench_viz.py [--strategies fcfs] [--steps 120] [--start-min 480]
[--profile]``
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections import defaultdict
from pathlib import Path

import ipyvuetify as v
import solara

APP_PATH = Path(__file__).resolve().parents[1] / "viz" / "app.py"
TARGET_MS = 300.0


def load_app():
    """``viz/app.py`` as a module (viz/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("agentev_viz_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, name: str, sink: dict[str, list[float]]):
    """``fn`` with every call's wall time appended to ``sink[name]`` (seconds)."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink[name].append(time.perf_counter() - start)

    wrapper.__name__ = wrapper.__qualname__ = getattr(fn, "__name__", name)
    wrapper.__doc__ = fn.__doc__
    return wrapper


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def bench(app, strategy: str, steps: int, start_min: int, seed: int, profile: bool) -> dict:
    """Click Step ``steps`` times on a page showing ``strategy``; per-part times (seconds)."""
    parts: dict[str, list[float]] = defaultdict(list)
    model = app.FactoryViewModel(strategy=strategy, rng=seed)
    model.run_for(start_min)
    model.step = timed(model.step, "model step", parts)
    components = [
        (timed(fn, fn.__name__, parts), page) if page == 0 else (fn, page)
        for fn, page in app.make_components()
    ]
    reactive = solara.reactive(model)
    start = time.perf_counter()
    _, rc = solara.render(
        solara.AppLayout(children=[app.make_page(reactive, components=components)]),
        handle_error=False,
    )
    first_render = time.perf_counter() - start
    parts.clear()
    button = rc.find(v.Btn, children=["Step"]).widget
    clicks = []
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    for _ in range(steps):
        start = time.perf_counter()
        button.click()
        clicks.append(time.perf_counter() - start)
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
    assert reactive.value.time == start_min + steps, "the page did not advance one minute per click"
    rc.close()
    return {"first render": [first_render], "click (total)": clicks, **parts}


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="fcfs", help="comma list (default: fcfs)")
    parser.add_argument("--steps", type=int, default=120, help="Step clicks per strategy")
    parser.add_argument(
        "--start-min", type=int, default=480, help="model time before the first click (min)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of clicks")
    args = parser.parse_args()

    app = load_app()
    print(
        f"viz/app.py, light scenario, seed {args.seed}: {args.steps} Step clicks from "
        f"t = {args.start_min} min; target {TARGET_MS:.0f} ms per click (median and p95)"
    )
    verdicts = []
    for strategy in args.strategies.split(","):
        times = bench(app, strategy, args.steps, args.start_min, args.seed, args.profile)
        clicks = times["click (total)"]
        print(f"\n{strategy}: first render {times['first render'][0] * 1000:.0f} ms")
        print(f"  {'part':<22} {'median ms':>10} {'p95 ms':>10} {'max ms':>10} {'calls':>6}")
        for name, values in times.items():
            if name == "first render":
                continue
            print(
                f"  {name:<22} {statistics.median(values) * 1000:>10.1f} "
                f"{p95(values) * 1000:>10.1f} {max(values) * 1000:>10.1f} {len(values):>6}"
            )
        ok = statistics.median(clicks) * 1000 <= TARGET_MS and p95(clicks) * 1000 <= TARGET_MS
        verdicts.append(ok)
        print(f"  -> {'meets' if ok else 'MISSES'} the {TARGET_MS:.0f} ms target")
    if not all(verdicts):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
