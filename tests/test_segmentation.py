"""Federated segmentation: Dice, the mask generator, sites with masks, one run, figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fedlab as fl
from fedlab.data.base import Split
from fedlab.metrics import classification_metrics, dice, segmentation_metrics, task_metrics
from fedlab.training import _augment, soft_dice_loss, task_loss


def _mask(rows: list[str]) -> np.ndarray:
    return np.array([[int(c) for c in r] for r in rows])


# -- Dice on hand-made masks --------------------------------------------------------------
def test_dice_by_hand():
    target = _mask(["1100",
                    "1100",
                    "0022",
                    "0000"])
    pred = _mask(["1000",
                  "1110",
                  "0002",
                  "0020"])
    # class 1: |T|=4, |P|=4, overlap 3 -> 6/8; class 2: |T|=2, |P|=2, overlap 1 -> 2/4
    np.testing.assert_allclose(dice(pred[None], target[None], 3), [[0.75, 0.5]])
    np.testing.assert_allclose(dice(target[None], target[None], 3), [[1.0, 1.0]])


def test_dice_empty_mask_convention():
    empty = np.zeros((1, 3, 3), dtype=int)
    lesion = empty.copy()
    lesion[0, 1, 1] = 2
    organ_only = np.ones((1, 3, 3), dtype=int)
    # class 2 absent from both: 1; present in one only: 0
    assert dice(organ_only, organ_only, 3)[0].tolist() == [1.0, 1.0]
    assert dice(empty, lesion, 3)[0].tolist() == [1.0, 0.0]
    assert dice(lesion, empty, 3)[0].tolist() == [1.0, 0.0]


def test_dice_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        dice(np.zeros((1, 3, 3)), np.zeros((1, 3, 4)), 2)


def test_segmentation_metrics_by_hand():
    target = _mask(["11", "00"])[None]  # one image, classes 0/1
    pred = _mask(["10", "00"])[None]
    probs = np.stack([(pred == 0), (pred == 1)], axis=1).astype(float) * 0.8 + 0.1
    m = segmentation_metrics(probs, target, loss_sum=2.0)
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["dice"] == pytest.approx(2 * 1 / (1 + 2)) == m["dice_1"]
    assert m["loss"] == pytest.approx(2.0 / 4)  # per pixel
    assert m["n"] == 1.0 and np.isnan(m["auc"])


def test_task_metrics_keeps_classification_unchanged():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 1, 1])
    assert task_metrics(probs, labels, 1.5) == classification_metrics(probs, labels, 1.5)


# -- losses and augmentation ----------------------------------------------------------------
def test_soft_dice_loss_zero_for_confident_correct_and_positive_otherwise():
    target = torch.from_numpy(_mask(["0112", "0112"]))[None]
    good = 50.0 * F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    assert float(soft_dice_loss(good, target)) == pytest.approx(0.0, abs=1e-6)
    wrong = 50.0 * F.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float()
    assert float(soft_dice_loss(wrong, target)) > 0.5
    expected = F.cross_entropy(wrong, target) + soft_dice_loss(wrong, target)
    assert torch.equal(task_loss(wrong, target), expected)
    logits, labels = torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1])
    assert torch.equal(task_loss(logits, labels), F.cross_entropy(logits, labels))


def test_augment_shifts_images_and_masks_together():
    gen = torch.Generator().manual_seed(3)
    masks = torch.randint(0, 3, (4, 12, 12))
    images = masks[:, None].float() / 2
    moved = False
    for _ in range(5):
        x, y = _augment(images, masks, gen)
        assert torch.equal(x[:, 0] * 2, y.float())
        moved |= not torch.equal(y, masks)
    assert moved


# -- data: Split, generator, sites --------------------------------------------------------
def test_split_accepts_masks_and_names_both_shapes_on_error():
    images = np.zeros((2, 1, 4, 4), dtype=np.float32)
    assert Split(images, np.zeros((2, 4, 4), dtype=np.int64)).task == "segmentation"
    assert Split(images, np.zeros(2, dtype=np.int64)).task == "classification"
    with pytest.raises(ValueError, match=r"\(2,\) \(classes\) or \(2, 4, 4\) \(masks\)"):
        Split(images, np.zeros((2, 4, 5), dtype=np.int64))


def test_generator_is_deterministic_and_splits_are_independent():
    a = fl.data.make_segmentation(n_train=20, n_val=5, n_test=8, image_size=16, seed=1)
    b = fl.data.make_segmentation(n_train=20, n_val=5, n_test=8, image_size=16, seed=1)
    c = fl.data.make_segmentation(n_train=30, n_val=5, n_test=8, image_size=16, seed=1)
    d = fl.data.make_segmentation(n_train=20, n_val=5, n_test=8, image_size=16, seed=2)
    assert np.array_equal(a.train.images, b.train.images)
    assert np.array_equal(a.train.labels, b.train.labels)
    assert np.array_equal(a.test.labels, c.test.labels)  # test set ignores n_train
    assert not np.array_equal(a.train.labels, d.train.labels)
    assert a.train.labels.shape == (20, 16, 16) and a.train.labels.dtype == np.int64
    assert a.classes == ("background", "organ", "lesion")
    by_name = fl.data.load("synthetic-segmentation", n_train=20, n_val=5, n_test=8,
                           image_size=16, seed=1)
    assert np.array_equal(by_name.train.images, a.train.images)


def test_masks_follow_the_image():
    data = fl.data.make_segmentation(n_train=200, n_val=1, n_test=1, image_size=32,
                                     seed=0, noise=0.0)
    x, m = data.train.images[:, 0], data.train.labels
    assert set(np.unique(m)) == {0, 1, 2}
    has_lesion = (m == 2).any(axis=(1, 2))
    assert 0.1 < 1 - has_lesion.mean() < 0.35  # empty lesion masks occur
    for img, mask in zip(x[has_lesion], m[has_lesion], strict=True):
        assert img[mask == 2].mean() > img[mask == 1].mean() > img[mask == 0].mean()
    # thresholding the image recovers the organ's mask; a 2-pixel misalignment would not
    organ = (m > 0).astype(int)
    assert dice((x > 0.25).astype(int), organ, 2).min() > 0.92
    assert dice((x > 0.25).astype(int), np.roll(organ, 2, axis=2), 2).mean() < 0.9


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="image_size must be a multiple of 4"):
        fl.data.make_segmentation(image_size=30)
    with pytest.raises(ValueError, match="noise"):
        fl.data.make_segmentation(noise=-1.0)


@pytest.fixture(scope="module")
def seg_sites():
    data = fl.data.make_segmentation(n_train=24, n_val=6, n_test=9, image_size=16, seed=0)
    return fl.data.split_segmentation(data, 3, seed=0,
                                      shift=fl.data.AcquisitionShift(strength=0.8))


def test_split_segmentation_keeps_every_image_once():
    data = fl.data.make_segmentation(n_train=30, n_val=6, n_test=9, image_size=16, seed=0)
    fed = fl.data.split_segmentation(data, 3, seed=0, weights=[1, 1, 4])
    assert [s.size("train") for s in fed] == [5, 5, 20]
    for name in ("train", "val", "test"):
        ours = np.concatenate([s.split(name).images for s in fed])
        whole = getattr(data, name).images
        assert sorted(map(bytes, ours)) == sorted(map(bytes, whole))
    assert fed[0].label_counts().sum() == 5 * 16 * 16  # pixels per class
    with pytest.raises(ValueError, match="weights must be 3"):
        fl.data.split_segmentation(data, 3, weights=[1, 0, 1])
    with pytest.raises(ValueError, match="split_segmentation"):
        fl.data.split(data, 3)
    with pytest.raises(ValueError, match="fedlab.data.split"):
        fl.data.split_segmentation(fl.data.make_synthetic(n_train=10), 2)


def test_shift_changes_images_not_masks(seg_sites):
    data = fl.data.make_segmentation(n_train=24, n_val=6, n_test=9, image_size=16, seed=0)
    plain = fl.data.split_segmentation(data, 3, seed=0)
    for a, b in zip(plain, seg_sites, strict=True):
        assert np.array_equal(a.split("train").labels, b.split("train").labels)
        assert not np.array_equal(a.split("train").images, b.split("train").images)
    assert set(seg_sites.scanners) == set(seg_sites.names)


# -- the round loop on masks --------------------------------------------------------------
def _run(sites, strategy="fedavg", rounds=1, **kw):
    return fl.run(sites, model="unet", strategy=strategy, rounds=rounds, batch_size=8,
                  lr=3e-3, seed=0, progress=False, **kw)


def test_one_fedavg_round_logs_dice_per_site_and_global(seg_sites):
    h = _run(seg_sites)
    frame = h.to_frame()
    assert {"dice", "dice_1", "dice_2"} <= set(frame.columns)
    last = frame[frame["round"] == 1].set_index("site")
    assert list(last.index) == [*seg_sites.names, "global"]
    assert ((last["dice"] >= 0) & (last["dice"] <= 1)).all()
    assert last.loc["global", "n"] == sum(s.size("test") for s in seg_sites)
    up = [r for r in h.ledger if r["direction"] == "up"]
    assert len(up) == 3 and up[0]["bytes"] >= fl.models.state_bytes(h.final_state)
    assert _run(seg_sites).equals(h)  # same seed, same History


def test_global_dice_averages_images_of_all_sites(seg_sites):
    h = _run(seg_sites, strategy="local", rounds=1, augment=True)
    per_site = h.per_site("dice")
    sizes = np.array([s.size("test") for s in seg_sites])
    assert h.final("dice") == pytest.approx(float(per_site.to_numpy() @ sizes / sizes.sum()))


def test_tables_and_figures(seg_sites):
    runs = {"local": _run(seg_sites, "local"), "fedavg": _run(seg_sites)}
    table = fl.segmentation.dice_table(runs)
    assert list(table.columns) == ["local", "fedavg"]
    assert table.loc["global", "fedavg"] == runs["fedavg"].final("dice")
    assert len(fl.segmentation.plot_dice_by_site(table).data) == 2
    info = fl.segmentation.mask_overlays_info(seg_sites, runs, per_site=2)
    assert len(info) == 6 and set(info[0]["pred"]) == {"local", "fedavg"}
    row = info[0]
    assert row["pred"]["local"].shape == row["truth"].shape == row["image"].shape == (16, 16)
    expected = dice(row["pred"]["fedavg"][None], row["truth"][None], 3).mean()
    assert row["dice"]["fedavg"] == pytest.approx(expected)
    fig = fl.segmentation.plot_mask_overlays(info, classes=seg_sites.classes)
    assert len(fig.data) == 6 * 3 * 2  # image + boundary per panel
    with pytest.raises(ValueError, match="no 'dice' metric"):
        fl.segmentation.dice_table({"cls": fl.History.from_dict(runs["local"].to_dict()
                                                                | {"metrics": []})})


def test_history_json_round_trip_keeps_dice(seg_sites, tmp_path):
    h = _run(seg_sites)
    loaded = fl.History.load(h.save(tmp_path / "history.json"))
    assert loaded.equals(h)
    assert loaded.final("dice") == h.final("dice")
    row = fl.History.from_dict({"metrics": [{"round": 0, "site": "global", "split": "test",
                                             "dice": None, "dice_2": None}]}).metrics[0]
    assert np.isnan(row["dice"]) and np.isnan(row["dice_2"])
