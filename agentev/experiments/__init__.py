"""Experiment campaigns: runs, checkpoints, backends, statistics, reports and sweeps."""

from agentev.experiments.checkpoint import CheckpointStore, CheckpointWarning, RunSpec, run_key
from agentev.experiments.framework import CampaignError, ExperimentalFramework

__all__ = [
    "CampaignError",
    "CheckpointStore",
    "CheckpointWarning",
    "ExperimentalFramework",
    "RunSpec",
    "run_key",
]
