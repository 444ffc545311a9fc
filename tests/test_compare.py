"""`mammo compare`: delta-AUC over the same samples, refusal of different sample sets, file/folder inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammo.cli import main
from mammo.errors import UserError
from mammo.evaluate.compare import compare


def _pred(path, noise: float, seed: int, n: int = 200, column: str = "logit"):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    score = labels + np.random.default_rng(seed).normal(0, noise, n)
    df = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "patient_id": [f"w{i // 2}" for i in range(n)],
            "label": labels,
            column: score,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def test_compare_files_and_folders(tmp_path, capsys):
    _pred(tmp_path / "run" / "eval" / "test" / "predictions.csv", 2.0, 1)
    _pred(tmp_path / "cv" / "oof.csv", 0.4, 2, column="score")
    r = compare(tmp_path / "run", tmp_path / "cv")
    assert r.auc_b > r.auc_a and r.ci_low > 0 and r.n == 200 and r.n_women == 100
    assert "B is better" in r.summary()
    assert main(["compare", str(tmp_path / "cv" / "oof.csv"), str(tmp_path / "run")]) == 0
    assert "A is better" in capsys.readouterr().out


def test_compare_refuses_other_samples_in_one_line(tmp_path, capsys):
    a = _pred(tmp_path / "a.csv", 1.0, 1)
    a.iloc[:-1].to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(UserError, match="different samples"):
        compare(tmp_path / "a.csv", tmp_path / "b.csv")
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "1 only in A" in err
    with pytest.raises(UserError, match="no predictions here"):
        compare(tmp_path / "a.csv", tmp_path / "nowhere")
