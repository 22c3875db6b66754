"""fedlab.topologies.site_distances: each site's squared distance to the average model."""

from __future__ import annotations

import pytest
import torch

from fedlab.topologies import consensus_distance, site_distances


def test_site_distances_by_hand():
    states = [{"w": torch.tensor([0.0, 0.0])}, {"w": torch.tensor([2.0, 0.0])},
              {"w": torch.tensor([1.0, 3.0])}]
    # average (1, 1): squared distances 1 + 1, 1 + 1, 0 + 4
    d = site_distances(states)
    assert d.tolist() == pytest.approx([2.0, 2.0, 4.0])
    assert d.mean() == pytest.approx(consensus_distance(states))


def test_site_distances_keeps_names_and_ignores_integer_buffers():
    states = {"a": {"w": torch.tensor([1.0]), "n": torch.tensor(5)},
              "b": {"w": torch.tensor([3.0]), "n": torch.tensor(9)}}
    d = site_distances(states)
    assert list(d.index) == ["a", "b"]
    assert d.tolist() == pytest.approx([1.0, 1.0])


def test_site_distances_zero_when_sites_agree_and_rejects_empty():
    s = {"w": torch.ones(3, 2)}
    assert site_distances([s, s, s]).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        site_distances([])
