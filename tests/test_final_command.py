"""`python bench/real_accuracy.py final --table TABLE --out RUN` on a small synthetic table: RUN scores new images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mammo.models.checkpoint import load_run
from mammo.predict.files import predict

ROOT = Path(__file__).resolve().parents[1]
# The columns of rsna-screening-640's labels.csv (diagnosis fields included: `final` must never use them).
COLUMNS = [
    "image",
    "label",
    "patient_id",
    "image_id",
    "side",
    "view",
    "age",
    "site_id",
    "machine_id",
    "biopsy",
    "invasive",
    "BIRADS",
    "implant",
    "density",
    "difficult_negative_case",
    "width",
    "height",
    "mode",
    "source_path",
    "source_git_blob",
    "patient_hash_mod10",
    "split",
    "inverted",
    "in_rsna_screening_dev",
]


def _film(rng: np.random.Generator, cancer: bool, inverted: bool, size: int = 96) -> np.ndarray:
    """A gray film: dark background, a bright half-ellipse breast on the left, a small bright spot for cancer."""
    img = rng.normal(12, 3, (size, size))
    cv2.ellipse(img, (0, size // 2), (int(size * 0.6), int(size * 0.42)), 0, -90, 90, 130, -1)
    img += rng.normal(0, 8, img.shape) * (img > 60)
    if cancer:
        cv2.circle(img, (int(size * 0.3), int(rng.integers(size // 3, 2 * size // 3))), size // 14, 235, -1)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return 255 - img if inverted else img


def make_table(root: Path, women: int = 16) -> Path:
    """A labels.csv in rsna-screening-640's format with two views per woman (JPEG and PNG), 2/3 train, val, test."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows = []
    for w in range(women):
        cancer = w % 2
        split = ("train", "train", "val", "test")[w % 4]
        for v, view in enumerate(("CC", "MLO")):
            name = f"images/{w}_{v}.{'jpg' if v else 'png'}"
            inverted = int(w % 5 == 0)
            cv2.imwrite(
                str(root / name), cv2.cvtColor(_film(rng, bool(cancer), bool(inverted)), cv2.COLOR_GRAY2BGR)
            )
            values = dict.fromkeys(COLUMNS, "")
            values.update(
                image=name,
                label=cancer,
                patient_id=w,
                image_id=f"{w}{v}",
                side="L",
                view=view,
                age=50 + w,
                site_id=1 + w % 2,
                machine_id=49,
                implant=0,
                split=split,
                inverted=inverted,
                width=96,
                height=96,
                biopsy=cancer,
                invasive=cancer,
            )
            rows.append(values)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def test_final_trains_a_run_that_predict_scores(tmp_path):
    table = make_table(tmp_path / "set")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    args = ["--prep-size", "96", "--size", "64", "--pooling", "topk", "--engine", "torch"]
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "real_accuracy.py"),
        "final",
        "--table",
        str(table),
        "--out",
        str(run),
    ]
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _, ckpt = load_run(run)
    assert ckpt["recipe"]["kind"] == "cached-trunk" and ckpt["model"]["args"]["pooling"] == "topk"
    trained_on = pd.read_csv(tmp_path / "run-work" / "train-prep" / "dataset.csv", dtype={"patient_id": str})
    assert set(trained_on["split"]) == {"train", "val"}  # test rows are never ingested
    assert not (set(trained_on["patient_id"]) & {str(w) for w in range(3, 16, 4)})
    images = sorted((tmp_path / "set" / "images").glob("3_*"))  # a test woman's films, as new images
    result = predict(run, images, workers=0, device="cpu")
    assert result.n_scored == 2
    assert result.rows["probability_malignant"].between(0, 1).all()
