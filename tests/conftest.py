"""Shared fixtures: small generated federations, so unit tests take seconds.

Two environment variables move the whole suite to other floating-point paths, the way
another CPU or BLAS would:

- ``FEDLAB_TEST_SEED`` (default 0) is added to every seed of the shared fixtures and of
  the learned-quality tests (``seeded(k)``);
- ``FEDLAB_TEST_THREADS`` (default 1) is the number of torch threads for every test
  (a different thread count sums in a different order, so it rounds differently).

Tests that assert a learned quality (an accuracy, AUC, PSNR, attack success, ... after
training) carry the ``quality`` marker and check their bounds through the ``margin``
fixture, which records how far each value cleared its bound. ``make test-robust`` runs
them for seed offsets 0-4 under one thread and the default thread count, and prints the
worst margin of each check (``.ci/test_robust.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import fedlab as fl

REPO = Path(__file__).resolve().parents[1]


def _env_int(name: str, default: int, low: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        raise pytest.UsageError(f"{name} must be an integer >= {low}, got {raw!r}") from None
    if value < low:
        raise pytest.UsageError(f"{name} must be an integer >= {low}, got {raw!r}")
    return value


SEED_OFFSET = _env_int("FEDLAB_TEST_SEED", 0, 0)
THREADS = _env_int("FEDLAB_TEST_THREADS", 1, 1)


def seeded(k: int = 0) -> int:
    """The suite's seed number ``k``, moved by ``FEDLAB_TEST_SEED``."""
    return SEED_OFFSET + k


def medmnist_dir() -> Path | None:
    """Folder with real MedMNIST files: $FEDLAB_DATA, else ../shared/data/medmnist."""
    for cand in (os.environ.get("FEDLAB_DATA"), REPO.parent / "shared/data/medmnist"):
        if cand and (Path(cand) / "pneumoniamnist.npz").exists():
            return Path(cand)
    return None


def pytest_report_header(config):
    return f"fedlab: FEDLAB_TEST_SEED={SEED_OFFSET}, FEDLAB_TEST_THREADS={THREADS}"


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(THREADS)  # small models: one thread is fastest
    yield


class Margin:
    """Assert a bound and record by how much the value cleared it.

    ``margin.above("median accuracy", robust, clean - 0.1)`` asserts ``robust > clean - 0.1``
    and records ``robust - (clean - 0.1)``; ``below`` is the mirror image. With
    ``FEDLAB_TEST_MARGINS=<file>`` every check is appended there as one JSON line.
    """

    def __init__(self, test: str):
        self.test = test
        self.path = os.environ.get("FEDLAB_TEST_MARGINS")

    def _record(self, label: str, value: float, bound: float, slack: float) -> None:
        if self.path:
            row = dict(test=self.test, check=label, value=float(value), bound=float(bound),
                       slack=float(slack), seed_offset=SEED_OFFSET, threads=THREADS)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def above(self, label: str, value: float, bound: float) -> None:
        self._record(label, value, bound, value - bound)
        assert value > bound, f"{label}: {value:.4g} is not above {bound:.4g}"

    def below(self, label: str, value: float, bound: float) -> None:
        self._record(label, value, bound, bound - value)
        assert value < bound, f"{label}: {value:.4g} is not below {bound:.4g}"


@pytest.fixture
def margin(request) -> Margin:
    return Margin(request.node.nodeid)


@pytest.fixture(scope="session")
def synthetic():
    return fl.data.make_synthetic(n_train=300, n_val=40, n_test=100, seed=seeded())


@pytest.fixture(scope="session")
def federation(synthetic):
    return fl.data.split(synthetic, n_sites=3, scheme=fl.data.Dirichlet(alpha=1.0),
                         seed=seeded())
