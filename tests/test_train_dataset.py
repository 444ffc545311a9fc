"""The PREP dataset, samplers and augmentation (fixtures: tests/conftest.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import make_prep

from mammo.datasets import PrepDataset
from mammo.errors import DataError
from mammo.prep.dataset import read_dataset_csv, split_rows
from mammo.train.augment import Augmenter
from mammo.train.sampling import EpochTagged, class_weights


def test_dataset_item_is_normalised_png16(tmp_path):
    prep = make_prep(tmp_path / "prep", n_train=4, n_val=2, n_test=0)
    rows = split_rows(read_dataset_csv(prep), "train", prep)
    ds = PrepDataset(prep, rows, size=32, mean=0.4, std=0.2)
    x, y, i = ds[3]
    raw = cv2.imread(str(prep / rows.loc[3, "image"]), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].numpy(), (raw / 65535.0 - 0.4) / 0.2, atol=1e-5)
    assert float(y) == rows.loc[3, "label"] and i == 3


def test_dataset_resizes_and_augments_per_epoch(tmp_path):
    prep = make_prep(tmp_path / "prep", n_train=4, n_val=2, n_test=0)
    rows = split_rows(read_dataset_csv(prep), "train", prep)
    plain = PrepDataset(prep, rows, size=16, mean=0.0, std=1.0)
    assert plain[0][0].shape == (1, 16, 16)
    raw = cv2.imread(str(prep / rows.loc[0, "image"]), cv2.IMREAD_UNCHANGED)
    expected = cv2.resize(raw, (16, 16), interpolation=cv2.INTER_AREA) / 65535.0
    np.testing.assert_allclose(plain[0][0][0].numpy(), expected, atol=1e-6)
    aug = PrepDataset(prep, rows, size=32, mean=0.0, std=1.0, augment=Augmenter("mammo", 32), seed=7)
    epoch0 = [aug[(i, 0)][0] for i in range(4)]
    assert all(torch.equal(a, aug[(i, 0)][0]) for i, a in enumerate(epoch0))
    assert any(not torch.equal(a, aug[(i, 1)][0]) for i, a in enumerate(epoch0))


def test_dataset_errors(tmp_path):
    with pytest.raises(DataError, match=r"dataset.csv: not found"):
        read_dataset_csv(tmp_path)
    prep = make_prep(tmp_path / "prep", n_train=4, n_val=2, n_test=0)
    df = read_dataset_csv(prep)
    with pytest.raises(DataError, match="'test' split is empty"):
        split_rows(df, "test", prep)
    df.loc[df["split"] == "val", "label"] = 0
    with pytest.raises(DataError, match="'val' split has only benign rows"):
        split_rows(df, "val", prep)
    df.drop(columns="patient_id").to_csv(prep / "dataset.csv", index=False)
    with pytest.raises(DataError, match="patient_id"):
        read_dataset_csv(prep)


@pytest.mark.parametrize("mode", ["mammo", "seed"])
def test_augment_seeded_shape_preserving(mode):
    img = np.random.default_rng(0).random((1, 48, 48), dtype=np.float32)
    aug = Augmenter(mode, 48)
    a, b = aug(img, 11), aug(img, 11)
    assert a.shape == img.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, aug(img, s)) for s in range(12, 16))
    np.testing.assert_array_equal(Augmenter("none", 48)(img, 3), img)


def test_epoch_tagging_and_class_weights():
    tagged = EpochTagged(torch.utils.data.SequentialSampler(range(3)))
    tagged.set_epoch(4)
    assert list(tagged) == [(0, 4), (1, 4), (2, 4)] and len(tagged) == 3
    np.testing.assert_allclose(class_weights([0, 0, 0, 1]), [1 / 3, 1 / 3, 1 / 3, 1.0])
