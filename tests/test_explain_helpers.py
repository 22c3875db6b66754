"""Helpers added for lessons 04 and 08: several runs' models in one dict, the fairness
table, the model-randomisation sanity check and the planted corner artefact."""

from __future__ import annotations

import warnings

import pytest
import torch

import fedlab as fl


@pytest.fixture(scope="module")
def runs(federation):
    # one round is enough for these checks; such a short FedAvg run may collapse
    warnings.simplefilter("ignore", fl.history.CollapsedModelWarning)
    kw = {"rounds": 1, "seed": 0, "progress": False}
    return {"FedAvg": fl.run(federation, **kw),
            "local": fl.run(federation, strategy="local", **kw)}


def test_runs_models_names_and_globals(federation, runs):
    models = fl.explain.runs_models(runs, federation)
    assert list(models) == ["FedAvg global"] + [f"local {n}" for n in federation.names]
    only = fl.explain.runs_models({"a": runs["FedAvg"], "b": runs["FedAvg"]}, federation,
                                  globals_from=["a"])
    assert list(only) == ["a global"]
    x = torch.from_numpy(federation[0].peek(2, "test").images)
    single = fl.explain.history_models(runs["FedAvg"], federation)["global"]
    torch.testing.assert_close(models["FedAvg global"](x), single(x))


def test_fairness_table_matches_fairness(federation, runs):
    reports = {name: fl.explain.site_report(h, federation) for name, h in runs.items()}
    table = fl.explain.fairness_table(reports, ("accuracy", "ece"))
    assert list(table.index) == [("FedAvg", "accuracy"), ("FedAvg", "ece"),
                                 ("local", "accuracy"), ("local", "ece")]
    assert list(table.columns) == ["worst_site", "worst", "best_site", "best", "mean", "spread"]
    assert all(table[c].dtype == float for c in ("worst", "best", "mean", "spread"))
    one = fl.explain.fairness(reports["local"], "ece")
    assert table.loc[("local", "ece"), "worst"] == pytest.approx(one["worst"])
    assert table.loc[("local", "ece"), "worst_site"] == one["worst_site"]


def test_randomized_model_changes_weights_not_global_rng():
    torch.manual_seed(3)
    net = fl.models.create_model("cnn")
    state = torch.random.get_rng_state()
    a = fl.explain.randomized_model(net, seed=1)
    b = fl.explain.randomized_model(net, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # global generator untouched
    for (k, p), q, r in zip(net.state_dict().items(), a.state_dict().values(),
                            b.state_dict().values(), strict=True):
        assert torch.equal(q, r), k  # same seed, same random weights
        if p.dim() > 1:  # conv and linear weights (norm layers restart at 1 and 0)
            assert not torch.equal(p, q), k


def test_randomization_check_identical_model_agrees_fully(synthetic):
    torch.manual_seed(0)
    net = fl.models.create_model("cnn").eval()
    images = synthetic.test.images[:3]
    table = fl.explain.randomization_check(net, images, methods=("gradcam",))
    assert list(table.index) == ["gradcam"]
    assert list(table.columns) == ["rank_correlation", "top_overlap"]
    assert -1.0 <= table.loc["gradcam", "rank_correlation"] <= 1.0
    # a "randomisation" that re-creates the very same weights leaves the maps unchanged
    same = fl.explain.randomized_model(net, seed=5)
    again = fl.explain.randomization_check(same, images, methods=("gradcam",), seed=5)
    assert again.loc["gradcam", "rank_correlation"] == pytest.approx(1.0, abs=1e-6)


def test_corner_artefact_marks_one_class_in_train_only(federation):
    site = max(federation, key=lambda s: min(s.label_counts()))  # holds both classes
    marked = fl.explain.corner_artefact(site, label=1, size=3, value=1.0)
    x, y = marked.tensors("train")
    x0, _ = site.tensors("train")
    positive = (y == 1).numpy()
    assert positive.any() and (~positive).any()
    assert torch.all(x[positive][..., :3, :3] == 1.0)
    torch.testing.assert_close(x[~positive], x0[~positive])
    torch.testing.assert_close(marked.tensors("test")[0], site.tensors("test")[0])
    assert marked.name == site.name and marked.size("val") == site.size("val")
    with pytest.raises(ValueError, match="splits"):
        fl.explain.corner_artefact(site, splits=("holdout",))
