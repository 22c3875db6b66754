import pytest
import torch

from fedlab.strategies import FedAvg, Update, is_finite, weighted_average


def test_weighted_average_by_hand():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor(4.0)}
    out = weighted_average([a, b], [1, 3])
    assert torch.allclose(out["w"], torch.tensor([2.5, 5.0]))
    assert torch.allclose(out["b"], torch.tensor(3.0))


def test_integer_buffers_are_rounded_means():
    out = weighted_average([{"n": torch.tensor(2)}, {"n": torch.tensor(5)}], [1, 1])
    assert out["n"].dtype == torch.int64 and out["n"].item() == 4  # 3.5 rounds to even 4


def test_fedavg_weights_count_examples_not_sites():
    ups = [Update("a", {"w": torch.tensor([0.0])}, n_examples=90),
           Update("b", {"w": torch.tensor([10.0])}, n_examples=10)]
    new, _ = FedAvg().aggregate({"w": torch.tensor([5.0])}, ups, {})
    assert new["w"].item() == pytest.approx(1.0)


def test_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        weighted_average([{"w": torch.zeros(1)}], [0])
    with pytest.raises(ValueError, match="2 states but 1 weights"):
        weighted_average([{"w": torch.zeros(1)}] * 2, [1])


def test_is_finite():
    assert is_finite({"w": torch.ones(2), "n": torch.tensor(1)})
    assert not is_finite({"w": torch.tensor([1.0, float("nan")])})
