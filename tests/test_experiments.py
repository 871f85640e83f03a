"""Experiment campaigns: the runs table, checkpoints, resume after kill -9, Dask, monitor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pypdf
import pytest

import agentev
from agentev import FactoryModel
from agentev.experiments import CheckpointWarning, ExperimentalFramework
from agentev.experiments.backends import Backend, VersionMismatchError
from agentev.experiments.framework import KEY_COLUMNS, METRIC_COLUMNS, campaign_status
from agentev.outputs import model_metrics

SMALL = {
    "num_replications": 2,
    "scenarios": ["light"],
    "strategies": ["uncontrolled", "fcfs"],
    "simulation_time": 1.0,
}


def _campaign(out: Path, **kwargs) -> ExperimentalFramework:
    fw = ExperimentalFramework(output_dir=out, workers=2, progress=False)
    fw.run_comprehensive_experiments(**{**SMALL, **kwargs})
    return fw


@pytest.fixture(scope="module")
def small_campaign(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("campaign")
    _campaign(out)
    return out


def test_runs_csv_has_one_row_per_run_keyed_with_every_metric(small_campaign):
    runs = pd.read_csv(small_campaign / "runs.csv")
    assert list(runs.columns) == [*KEY_COLUMNS, *METRIC_COLUMNS]
    assert len(runs) == 4
    assert list(zip(runs.strategy, runs.replication, runs.seed, strict=True)) == [
        ("uncontrolled", 0, 42),
        ("uncontrolled", 1, 43),
        ("fcfs", 0, 42),
        ("fcfs", 1, 43),
    ]
    assert not [c for c in runs.columns if "time" in c and c.endswith("_s")]
    # no other file's name contains "runs"
    names = [p.name for p in small_campaign.rglob("*") if "runs" in p.name]
    assert names == ["runs.csv"]


def test_campaign_metrics_are_those_of_the_run_itself(small_campaign):
    runs = pd.read_csv(small_campaign / "runs.csv")
    model = FactoryModel(scenario="light", strategy="fcfs", rng=43, duration_h=1.0)
    model.run()
    direct = {k: m.value for k, m in model_metrics(model).items()}
    row = runs[(runs.strategy == "fcfs") & (runs.replication == 1)].iloc[0]
    for name, value in direct.items():
        assert row[name] == pytest.approx(value, rel=0, abs=0), name
    assert np.isnan(row["gap_to_hindsight_plan"])  # no oracle in this campaign


def test_common_random_numbers_pair_strategies_by_replication(small_campaign):
    runs = pd.read_csv(small_campaign / "runs.csv")
    released = runs.pivot(index="replication", columns="strategy", values="tasks_released")
    assert (released["fcfs"] == released["uncontrolled"]).all()


def test_rerun_resumes_everything_and_redoes_nothing(small_campaign):
    before = {p: p.stat().st_mtime_ns for p in (small_campaign / "checkpoints").glob("*.json")}
    csv = (small_campaign / "runs.csv").read_bytes()
    fw = ExperimentalFramework(output_dir=small_campaign, workers=2, progress=False)
    fw.run_comprehensive_experiments(**SMALL)
    after = {p: p.stat().st_mtime_ns for p in (small_campaign / "checkpoints").glob("*.json")}
    assert after == before
    assert fw._progress.start_done == fw._progress.total == 4
    assert (small_campaign / "runs.csv").read_bytes() == csv


def test_bad_input_names_the_field_and_leaves_results_alone(small_campaign):
    csv = (small_campaign / "runs.csv").read_bytes()
    fw = ExperimentalFramework(output_dir=small_campaign, workers=2, progress=False)
    with pytest.raises(ValueError, match=r"strategies = 'cheapest'.*allowed: uncontrolled"):
        fw.run_comprehensive_experiments(**{**SMALL, "strategies": ["fcfs", "cheapest"]})
    with pytest.raises(ValueError, match=r"scenarios: .*nowhere"):
        fw.run_comprehensive_experiments(**{**SMALL, "scenarios": ["nowhere"]})
    with pytest.raises(ValueError, match=r"parameter 'num_robots' = 3: not a model parameter"):
        fw.run_comprehensive_experiments(**SMALL, num_robots=3)
    with pytest.raises(ValueError, match=r"num_replications = 0: must be an integer >= 1"):
        fw.run_comprehensive_experiments(**{**SMALL, "num_replications": 0})
    assert (small_campaign / "runs.csv").read_bytes() == csv


def test_corrupt_or_truncated_checkpoint_is_redone_with_a_warning(small_campaign, tmp_path):
    out = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(small_campaign), str(out)], check=True)
    files = sorted((out / "checkpoints").glob("*.json"))
    text = files[0].read_text()
    files[0].write_text(text[: len(text) // 2])  # truncated
    record = json.loads(files[1].read_text())
    record["result"]["metrics"]["tasks_completed"] += 1.0  # tampered: checksum mismatch
    files[1].write_text(json.dumps(record))
    (out / "checkpoints" / "deadbeefdeadbeef.json.tmp").write_text("{")  # a cut-off write
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _campaign(out)
    corrupt = [w for w in caught if issubclass(w.category, CheckpointWarning)]
    assert len(corrupt) == 2
    assert all("done again" in str(w.message) for w in corrupt)
    assert not list((out / "checkpoints").glob("*.tmp"))
    assert (out / "runs.csv").read_bytes() == (small_campaign / "runs.csv").read_bytes()


def _cli(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agentev.cli",
        "experiments",
        "--scenarios",
        "light",
        "--strategies",
        "uncontrolled,fcfs,negotiation",
        "--replications",
        "3",
        "--simulation-time",
        "2",
        "--workers",
        "2",
        "--no-reports",
        "--output-dir",
        str(out),
        *extra,
    ]


def test_campaign_killed_at_random_moments_resumes_to_identical_results(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_cli(reference), check=True, capture_output=True, timeout=600)
    out = tmp_path / "killed"
    rng = np.random.default_rng(7)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            _cli(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(float(rng.uniform(1.0, 3.0)))  # the campaign takes about 4 s
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the campaign and its workers, as in a crash
            kills += 1
        proc.wait(timeout=60)
        stored = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("*.json")}
        if (out / "runs.csv").exists():
            break
    assert kills >= 1
    finished = subprocess.run(_cli(out), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    after = {p: p.stat().st_mtime_ns for p in stored}
    assert after == stored  # finished runs were never redone
    assert (out / "runs.csv").read_bytes() == (reference / "runs.csv").read_bytes()
    assert not list((out / "checkpoints").glob("*.tmp"))


def test_dask_local_cluster_gives_the_same_results_as_the_local_pool(small_campaign, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        fw = ExperimentalFramework(
            output_dir=tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False
        )
        fw.run_comprehensive_experiments(**SMALL)
    assert (tmp_path / "dask" / "runs.csv").read_bytes() == (
        small_campaign / "runs.csv"
    ).read_bytes()


def test_dask_workers_with_another_version_are_refused(monkeypatch):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        monkeypatch.setattr(agentev, "__version__", "0.0.0-other")  # this side only
        with pytest.raises(VersionMismatchError, match="another agentev version"):
            Backend(scheduler=cluster.scheduler_address)


def test_monitor_shows_progress_rate_and_eta(small_campaign):
    line = campaign_status(small_campaign)
    assert "4/4 runs (100 %)" in line and "runs/min" in line and "ETA" in line
    cli = subprocess.run(
        [sys.executable, "-m", "agentev.cli", "monitor", str(small_campaign), "--once"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "4/4 runs" in cli.stdout


def test_reports_are_written_with_valid_pdf_figures(small_campaign, tmp_path):
    out = tmp_path / "report"
    subprocess.run(["cp", "-r", str(small_campaign), str(out)], check=True)
    files = ExperimentalFramework(output_dir=out, progress=False).generate_reports()
    assert Path(files["report"]).read_text().startswith("#")
    pdfs = sorted((out / "figures").glob("*.pdf"))
    assert {p.name for p in pdfs} >= {"boxplots.pdf", "soc_trajectories.pdf"}
    for pdf in pdfs:
        assert len(pypdf.PdfReader(pdf).pages) >= 1
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.strategy) == {"uncontrolled", "fcfs"}


def test_the_bare_command_means_the_full_default_campaign():
    from agentev.cli import _parser
    from agentev.strategies import STRATEGIES

    args = _parser().parse_args(["experiments"])
    assert args.scenarios.split(",") == ["light", "heavy", "flexible", "continuous"]
    assert args.strategies.split(",") == list(STRATEGIES)
    assert args.replications == 30 and args.simulation_time is None
    assert args.output_dir == "results" and args.scheduler is None


def test_run_single_simulation_stores_its_run_and_reuses_it(tmp_path):
    fw = ExperimentalFramework(output_dir=tmp_path, progress=False)
    first = fw.run_single_simulation(scenario="light", strategy="fcfs", seed=5, simulation_time=1)
    (stored,) = (tmp_path / "checkpoints").glob("*.json")
    mtime = stored.stat().st_mtime_ns
    again = fw.run_single_simulation(scenario="light", strategy="fcfs", seed=5, simulation_time=1)
    assert again == first and stored.stat().st_mtime_ns == mtime
    assert (first["scenario"], first["strategy"], first["seed"]) == ("light", "fcfs", 5)
