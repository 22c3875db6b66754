"""Shared fixtures: small generated federations, so unit tests take seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import fedlab as fl

REPO = Path(__file__).resolve().parents[1]


def medmnist_dir() -> Path | None:
    """Folder with real MedMNIST files: $FEDLAB_DATA, else ../shared/data/medmnist."""
    for cand in (os.environ.get("FEDLAB_DATA"), REPO.parent / "shared/data/medmnist"):
        if cand and (Path(cand) / "pneumoniamnist.npz").exists():
            return Path(cand)
    return None


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # small models: one thread is fastest and most repeatable
    yield


@pytest.fixture(scope="session")
def synthetic():
    return fl.data.make_synthetic(n_train=300, n_val=40, n_test=100, seed=0)


@pytest.fixture(scope="session")
def federation(synthetic):
    return fl.data.split(synthetic, n_sites=3, scheme=fl.data.Dirichlet(alpha=1.0), seed=0)
