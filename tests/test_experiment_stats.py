import json
import math

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader
from scipy import stats as sps

from agentev.experiments.reports import write_report
from agentev.experiments.stats import (
    COMPARISON_COLUMNS,
    GAP_COLUMNS,
    SUMMARY_COLUMNS,
    add_derived,
    fill_gaps,
    gap_to_references,
    paired_comparisons,
    summarize,
    upgrade_runs,
)
from agentev.metrics import DEFINITIONS

SCENARIOS = ("heavy", "light")
STRATEGIES = ("fcfs", "hindsight", "twin")
R = 6


def make_runs(seed=0, reps=R, scenarios=SCENARIOS, strategies=STRATEGIES):
    rng = np.random.default_rng(seed)
    rows = []
    for i, scenario in enumerate(scenarios):
        for strategy in strategies:
            for k in range(reps):
                row = {"scenario": scenario, "strategy": strategy, "replication": k}
                row["seed"] = 1000 * i + k
                row.update({name: float(rng.uniform(1.0, 100.0)) for name in DEFINITIONS})
                row["tasks_completed"] = float(rng.integers(50, 80))
                row["gap_to_hindsight_plan"] = math.nan
                rows.append(row)
    return pd.DataFrame(rows)


def make_traces(runs, minutes=120):
    rows = []
    for (scenario, strategy), _ in runs.groupby(["scenario", "strategy"]):
        shift = len(strategy) / 10
        for t in range(1, minutes + 1):
            rows.append(
                {
                    "scenario": scenario,
                    "strategy": strategy,
                    "replication": 0,
                    "time_min": t,
                    "soc_mean": 0.8 - 0.002 * t * shift,
                    "soc_min": 0.6 - 0.002 * t * shift,
                    "soc_max": 0.95 - 0.001 * t,
                    "site_power_kw": 50.0 + 10 * shift * (t % 30 < 15),
                    "price_per_kwh": 0.2 if t < 60 else 0.3,
                    "ports_occupied": t % 3,
                    "num_ports": 2,
                }
            )
    return pd.DataFrame(rows)


def make_pareto():
    rows = []
    for i, (ae, ad) in enumerate([(1, 0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0, 1)]):
        rows.append(
            {
                "alpha_energy": ae,
                "alpha_downtime": ad,
                "alpha_utilization": 0.0,
                "energy_cost_total": 100.0 + 20 * i,
                "service_shortfall_vehicle_h": 10.0 - 2 * i,
                "pareto": True,
            }
        )
    rows.append({**rows[2], "energy_cost_total": 200.0, "pareto": False})
    return pd.DataFrame(rows)


# --- summarize -----------------------------------------------------------------------------


def test_add_derived_sums_adjusted_energy_cost_and_demand_charge():
    runs = make_runs()
    out = add_derived(runs)
    assert "energy_cost_total" not in runs.columns
    expected = runs["energy_cost_adjusted"] + runs["demand_charge"]
    assert out["energy_cost_total"].tolist() == expected.tolist()


def test_summarize_matches_hand_computation_on_one_group():
    runs = make_runs()
    summary = summarize(runs)
    assert list(summary.columns) == SUMMARY_COLUMNS
    row = summary[
        (summary["scenario"] == "light")
        & (summary["strategy"] == "twin")
        & (summary["metric"] == "peak_site_power_kw")
    ].iloc[0]
    x = runs.loc[
        (runs["scenario"] == "light") & (runs["strategy"] == "twin"), "peak_site_power_kw"
    ].to_numpy()
    mean, std = x.mean(), x.std(ddof=1)
    half = sps.t.ppf(0.975, len(x) - 1) * std / np.sqrt(len(x))
    assert row["unit"] == "kW"
    assert row["n"] == R
    assert row["mean"] == pytest.approx(mean, rel=1e-14)
    assert row["std"] == pytest.approx(std, rel=1e-14)
    assert row["ci_low"] == pytest.approx(mean - half, rel=1e-14)
    assert row["ci_high"] == pytest.approx(mean + half, rel=1e-14)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=mean, scale=sps.sem(x))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)


def test_summarize_has_every_metric_and_the_derived_one_in_fixed_order():
    summary = summarize(make_runs())
    expected = [*DEFINITIONS, "energy_cost_total", "gap_to_hindsight_plan"]
    groups = list(summary.groupby(["scenario", "strategy"], sort=False))
    assert [k for k, _ in groups] == [(s, t) for s in SCENARIOS for t in STRATEGIES]
    for _, group in groups:
        assert group["metric"].tolist() == expected
    cost = summary[summary["metric"] == "energy_cost_total"]
    assert set(cost["unit"]) == {"currency"}


def test_summarize_ci_contains_the_mean_and_n_skips_nan():
    runs = make_runs()
    mask = (runs["scenario"] == "heavy") & (runs["strategy"] == "fcfs")
    idx = runs.index[mask][:2]
    runs.loc[idx, "availability"] = np.nan
    summary = summarize(runs, metrics=["availability", "energy_cost"])
    assert (summary["ci_low"] <= summary["mean"]).all()
    assert (summary["mean"] <= summary["ci_high"]).all()
    row = summary[
        (summary["scenario"] == "heavy")
        & (summary["strategy"] == "fcfs")
        & (summary["metric"] == "availability")
    ].iloc[0]
    assert row["n"] == R - 2
    assert row["mean"] == pytest.approx(runs.loc[mask, "availability"].dropna().mean())


def test_summarize_single_value_has_nan_std_and_ci_and_no_values_nan_mean():
    runs = make_runs(reps=1)
    summary = summarize(runs, metrics=["energy_cost", "gap_to_hindsight_plan"])
    cost = summary[summary["metric"] == "energy_cost"]
    assert (cost["n"] == 1).all()
    assert cost[["std", "ci_low", "ci_high"]].isna().all().all()
    gap = summary[summary["metric"] == "gap_to_hindsight_plan"]
    assert (gap["n"] == 0).all() and gap["mean"].isna().all()


def test_summarize_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="no_such_metric"):
        summarize(make_runs(), metrics=["no_such_metric"])


# --- paired comparisons --------------------------------------------------------------------


def shifted_runs(shift, reps=8):
    runs = make_runs(seed=3, reps=reps, scenarios=("light",), strategies=("fcfs", "twin"))
    # dyadic values: the differences are exact in floating point
    rng = np.random.default_rng(7)
    base = rng.integers(0, 1000, reps) / 4.0
    runs.loc[runs["strategy"] == "fcfs", "energy_cost"] = base
    runs.loc[runs["strategy"] == "twin", "energy_cost"] = base + shift
    return runs


def test_paired_known_shift_gives_mean_diff_exactly():
    comp = paired_comparisons(shifted_runs(2.5), metrics=["energy_cost"])
    assert list(comp.columns) == COMPARISON_COLUMNS
    assert len(comp) == 1
    row = comp.iloc[0]
    assert (row["scenario"], row["strategy"], row["baseline"]) == ("light", "twin", "fcfs")
    assert row["n"] == 8
    assert row["mean_diff"] == 2.5
    assert row["ci_low"] == row["ci_high"] == 2.5
    assert math.isnan(row["cohens_dz"])  # constant differences: std 0


def test_paired_t_test_and_wilcoxon_equal_scipy():
    runs = make_runs(seed=11)
    comp = paired_comparisons(runs, metrics=["energy_cost", "tasks_completed"])
    for metric in ("energy_cost", "tasks_completed"):
        row = comp[
            (comp["scenario"] == "heavy")
            & (comp["strategy"] == "twin")
            & (comp["metric"] == metric)
        ].iloc[0]
        sel = runs[runs["scenario"] == "heavy"]
        x = sel[sel["strategy"] == "twin"].sort_values("replication")[metric].to_numpy()
        b = sel[sel["strategy"] == "fcfs"].sort_values("replication")[metric].to_numpy()
        t = sps.ttest_rel(x, b)
        w = sps.wilcoxon(x - b)
        d = x - b
        assert row["mean_diff"] == pytest.approx(d.mean(), rel=1e-14)
        assert row["t_stat"] == pytest.approx(t.statistic, rel=1e-12)
        assert row["t_pvalue"] == pytest.approx(t.pvalue, rel=1e-12)
        assert row["wilcoxon_stat"] == pytest.approx(w.statistic)
        assert row["wilcoxon_pvalue"] == pytest.approx(w.pvalue, rel=1e-12)
        assert row["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
        assert row["relative_diff"] == pytest.approx(d.mean() / b.mean(), rel=1e-12)
        half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert row["ci_low"] == pytest.approx(d.mean() - half, rel=1e-12)
        assert row["ci_high"] == pytest.approx(d.mean() + half, rel=1e-12)


def test_paired_all_zero_differences():
    comp = paired_comparisons(shifted_runs(0.0), metrics=["energy_cost"])
    row = comp.iloc[0]
    assert row["mean_diff"] == 0.0
    assert math.isnan(row["wilcoxon_stat"])
    assert row["wilcoxon_pvalue"] == 1.0
    assert math.isnan(row["cohens_dz"])
    assert row["relative_diff"] == 0.0


def test_pairing_is_by_replication_even_when_rows_are_shuffled():
    runs = make_runs(seed=5)
    expected = paired_comparisons(runs)
    shuffled = runs.sample(frac=1.0, random_state=np.random.RandomState(1))
    shuffled = shuffled.reset_index(drop=True)
    pd.testing.assert_frame_equal(paired_comparisons(shuffled), expected)


def test_paired_drops_missing_pairs_and_nan_values():
    runs = make_runs(seed=2)
    runs = runs[~((runs["strategy"] == "twin") & (runs["replication"] == 0))]
    runs.loc[(runs["strategy"] == "fcfs") & (runs["replication"] == 1), "energy_cost"] = np.nan
    comp = paired_comparisons(runs, metrics=["energy_cost", "availability"])
    twin = comp[(comp["strategy"] == "twin")].set_index(["scenario", "metric"])
    assert twin.loc[("light", "energy_cost"), "n"] == R - 2
    assert twin.loc[("light", "availability"), "n"] == R - 1
    oracle = comp[(comp["strategy"] == "hindsight")].set_index(["scenario", "metric"])
    assert oracle.loc[("light", "energy_cost"), "n"] == R - 1


def test_paired_rows_sorted_and_scenarios_without_baseline_skipped():
    runs = make_runs()
    runs = runs[~((runs["scenario"] == "heavy") & (runs["strategy"] == "fcfs"))]
    comp = paired_comparisons(runs, metrics=["energy_cost", "availability"])
    keys = list(zip(comp["scenario"], comp["strategy"], comp["metric"], strict=True))
    assert keys == [
        ("light", "hindsight", "energy_cost"),
        ("light", "hindsight", "availability"),
        ("light", "twin", "energy_cost"),
        ("light", "twin", "availability"),
    ]
    assert paired_comparisons(runs, baseline="absent").empty


def test_paired_duplicate_replication_is_an_error():
    runs = make_runs()
    with pytest.raises(ValueError, match="twice"):
        paired_comparisons(pd.concat([runs, runs.iloc[[0]]]))


# --- gap to the optimum --------------------------------------------------------------------


def hand_runs():
    rows = [
        ("a", "hindsight", 0, 2.0),
        ("a", "hindsight", 1, 4.0),
        ("a", "fcfs", 0, 3.0),
        ("a", "fcfs", 1, 5.0),
        ("a", "twin", 0, 2.5),
        ("a", "twin", 2, 9.0),  # no oracle run for replication 2
        ("b", "fcfs", 0, 7.0),  # no oracle in scenario b
    ]
    runs = make_runs(reps=1).iloc[[0] * len(rows)].reset_index(drop=True)
    runs[["scenario", "strategy", "replication", "weighted_objective"]] = rows
    return runs


def test_fill_gaps_hand_example():
    filled = fill_gaps(hand_runs())
    assert filled["gap_to_hindsight_plan"].tolist()[:5] == [0.0, 0.0, 0.5, 0.25, 0.25]
    assert np.isnan(filled["gap_to_hindsight_plan"].iloc[5:]).all()


def test_gap_to_references_hand_example():
    gaps = gap_to_references(hand_runs())
    assert list(gaps.columns) == GAP_COLUMNS
    gaps = gaps[gaps["metric"] == "gap_to_hindsight_plan"]
    assert gaps["scenario"].tolist() == ["a", "a", "a"]
    assert gaps["strategy"].tolist() == ["fcfs", "hindsight", "twin"]
    assert gaps["n"].tolist() == [2, 2, 1]
    fcfs = gaps.iloc[0]
    assert fcfs["mean"] == pytest.approx(0.375)
    half = sps.t.ppf(0.975, 1) * np.std([0.5, 0.25], ddof=1) / np.sqrt(2)
    assert fcfs["ci_low"] == pytest.approx(0.375 - half)
    assert fcfs["ci_high"] == pytest.approx(0.375 + half)
    assert gaps.iloc[1]["mean"] == 0.0
    assert gaps.iloc[2]["mean"] == 0.25 and math.isnan(gaps.iloc[2]["ci_low"])


def test_gap_to_references_without_references_is_empty_with_columns():
    gaps = gap_to_references(make_runs(strategies=("fcfs", "twin")))
    assert gaps.empty
    assert list(gaps.columns) == GAP_COLUMNS


def test_savings_captured_is_measured_from_fcfs_bill_and_cheapest_bill():
    runs = hand_runs().iloc[:6].copy()
    # bills: energy_cost_adjusted + demand_charge; fcfs's cheapest bill sets the possible saving
    runs["energy_cost_adjusted"] = [9.0, 9.0, 10.0, 12.0, 8.0, 5.0]
    runs["demand_charge"] = 2.0
    runs["cheapest_bill"] = [7.0, 7.0, 8.0, 10.0, 6.0, 4.0]
    runs["lower_bound_objective"] = 1.0
    filled = fill_gaps(runs)
    # replication 0: fcfs bill 12, cheapest 8, possible 4; replication 1: 14, 10, 4
    assert filled["possible_saving"].tolist()[:5] == [4.0, 4.0, 4.0, 4.0, 4.0]
    assert filled["savings_captured"].tolist()[:5] == [0.25, 0.75, 0.0, 0.0, 0.5]
    assert np.isnan(filled["savings_captured"].iloc[5])  # no fcfs run for replication 2
    j = runs["weighted_objective"].to_numpy()
    assert filled["gap_to_lower_bound"].tolist() == pytest.approx(list(j - 1.0))


def test_old_names_are_read_with_a_deprecation_warning():
    new = hand_runs()
    old = new.rename(columns={"gap_to_hindsight_plan": "gap_to_offline_optimum"})
    old["strategy"] = old["strategy"].replace({"hindsight": "oracle"})
    with pytest.warns(DeprecationWarning, match="old names"):
        upgraded = upgrade_runs(old)
    assert upgraded["strategy"].tolist() == new["strategy"].tolist()
    with pytest.warns(DeprecationWarning):
        filled = fill_gaps(old)
    pd.testing.assert_series_equal(
        filled["gap_to_hindsight_plan"], fill_gaps(new)["gap_to_hindsight_plan"]
    )


# --- report --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign():
    runs = fill_gaps(make_runs(reps=4))
    traces = make_traces(runs)
    pareto = make_pareto()
    config = {"scenarios": list(SCENARIOS), "strategies": list(STRATEGIES), "replications": 4}
    return runs, traces, pareto, config


def files_of(directory):
    return {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*"))}


def test_write_report_writes_every_file_deterministically(tmp_path, campaign):
    runs, traces, pareto, config = campaign
    first = write_report(tmp_path / "one", runs, config, traces=traces, pareto=pareto)
    assert set(first) == {
        "summary",
        "comparisons",
        "gaps",
        "results",
        "report",
        "boxplots",
        "soc_trajectories",
        "site_power_price",
        "charger_occupancy",
        "pareto",
    }
    files = files_of(tmp_path / "one")
    assert set(files) == {
        "summary.csv",
        "comparisons.csv",
        "gaps.csv",
        "results.json",
        "report.md",
        "figures",
        "figures/boxplots.pdf",
        "figures/soc_trajectories.pdf",
        "figures/site_power_price.pdf",
        "figures/charger_occupancy.pdf",
        "figures/pareto.pdf",
    }
    assert all(path.exists() for path in first.values())
    assert not any("runs" in name for name in files)
    assert not any(name.endswith(".tmp") for name in files)

    results = json.loads((tmp_path / "one" / "results.json").read_text())
    assert set(results) == {"config", "runs", "summary", "comparisons", "gaps"}
    assert results["config"] == config
    assert len(results["runs"]) == len(runs)
    text = (tmp_path / "one" / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert results["runs"][0]["gap_to_hindsight_plan"] is not None
    summary = pd.read_csv(tmp_path / "one" / "summary.csv")
    pd.testing.assert_frame_equal(summary, summarize(runs), check_exact=True)

    for name, path in files.items():
        if name.endswith(".pdf"):
            reader = PdfReader(path)
            assert len(reader.pages) >= 1
    boxplots = PdfReader(files["figures/boxplots.pdf"])
    text = " ".join(page.extract_text() for page in boxplots.pages).lower()
    assert "service shortfall" in text and "vehicle-h" in text

    report = (tmp_path / "one" / "report.md").read_text()
    assert report.startswith("# Campaign report")
    assert "Paired comparisons against `fcfs`" in report
    assert "## Against the references" in report and "gap_to_hindsight_plan" in report
    assert "(figures/boxplots.pdf)" in report

    write_report(tmp_path / "two", runs, config, traces=traces, pareto=pareto)
    again = files_of(tmp_path / "two")
    assert set(again) == set(files)
    for name, path in files.items():
        if path.is_file():
            assert path.read_bytes() == again[name].read_bytes(), name


def test_write_report_without_traces_pareto_or_oracle(tmp_path):
    runs = make_runs(reps=3, scenarios=("light",), strategies=("fcfs", "twin"))
    written = write_report(tmp_path, runs, {"note": "minimal"}, traces=None)
    assert (tmp_path / "figures" / "boxplots.pdf").is_file()
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["boxplots.pdf"]
    assert "soc_trajectories" not in written
    assert pd.read_csv(tmp_path / "gaps.csv").empty
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["gaps"] == []
    assert all(row["gap_to_hindsight_plan"] is None for row in results["runs"])
    assert "Gap to the offline optimum" not in (tmp_path / "report.md").read_text()
