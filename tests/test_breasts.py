"""Breast-level scores read only the breast's own views: the other-breast and image-count guard of issue 28."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammo.stats.baselines import breast_block, breast_level, score_block
from mammo.stats.breasts import breast_key, breast_scores, image_breast_scores


def _rows(seed: int = 0) -> pd.DataFrame:
    """Six women: both breasts with CC+MLO, one breast only, repeated views, one breast with a single view."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in range(6):
        sides = ("LEFT", "RIGHT") if w % 2 == 0 else ("LEFT",)
        for side in sides:
            views = ("CC",) if (w, side) == (3, "LEFT") else ("CC", "MLO", "MLO") if w == 4 else ("CC", "MLO")
            for view in views:
                rows.append(
                    {
                        "patient_id": f"W{w}",
                        "side": side,
                        "view": view,
                        "label": int(w % 3 == 0 and side == "LEFT"),
                        "score": float(rng.normal()),
                    }
                )
    return pd.DataFrame(rows)


def _by_breast(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index(["patient_id", "side"])["score"].sort_index()


def test_breast_score_is_the_mean_over_views_of_view_means():
    rows = _rows()
    b = breast_scores(rows, ["score"]).set_index(["patient_id", "side"])
    w4 = rows[(rows["patient_id"] == "W4") & (rows["side"] == "LEFT")]
    cc, mlo = w4[w4["view"] == "CC"]["score"].mean(), w4[w4["view"] == "MLO"]["score"].mean()
    assert b.loc[("W4", "LEFT"), "score"] == pytest.approx((cc + mlo) / 2)
    assert b.loc[("W4", "LEFT"), "n_images"] == 3
    assert b.loc[("W4", "LEFT"), "views"] == "CC+MLO"
    single = rows[(rows["patient_id"] == "W3") & (rows["side"] == "LEFT")]["score"].iloc[0]
    assert b.loc[("W3", "LEFT"), "score"] == pytest.approx(single)  # one view: that view's score
    assert b.loc[("W0", "LEFT"), "label"] == 1 and b.loc[("W0", "RIGHT"), "label"] == 0


def test_no_breast_score_reads_the_other_breast_or_a_count():
    rows = _rows()
    base = _by_breast(breast_scores(rows, ["score"]))
    # the other breast's images removed, or given wild scores: the remaining breasts' scores do not move
    without_right = rows[~((rows["patient_id"] == "W0") & (rows["side"] == "RIGHT"))]
    got = _by_breast(breast_scores(without_right, ["score"]))
    pd.testing.assert_series_equal(got, base.drop(("W0", "RIGHT")))
    wild = rows.copy()
    wild.loc[(wild["patient_id"] == "W2") & (wild["side"] == "RIGHT"), "score"] = 1e6
    changed = _by_breast(breast_scores(wild, ["score"]))
    assert (changed != base).sum() == 1 and changed[("W2", "RIGHT")] == 1e6
    # another breast added for a woman who had one: her breast keeps its score
    extra = pd.DataFrame(
        [{"patient_id": "W1", "side": "RIGHT", "view": v, "label": 0, "score": 9.0} for v in ("CC", "MLO")]
    )
    grown = _by_breast(breast_scores(pd.concat([rows, extra]), ["score"]))
    assert grown[("W1", "LEFT")] == base[("W1", "LEFT")]
    # every row of a woman duplicated, or one image repeated three times: no breast score changes
    doubled = pd.concat([rows, rows[rows["patient_id"] == "W4"]])
    pd.testing.assert_series_equal(_by_breast(breast_scores(doubled, ["score"])), base)
    repeated = pd.concat([rows, rows.iloc[[0, 0, 0]]])
    pd.testing.assert_series_equal(_by_breast(breast_scores(repeated, ["score"])), base)
    # order of rows does not matter
    shuffled = rows.sample(frac=1.0, random_state=1)
    pd.testing.assert_series_equal(_by_breast(breast_scores(shuffled, ["score"])), base)
    # and the baselines' breast level is the same function
    pd.testing.assert_series_equal(_by_breast(breast_level(rows, ["score"])), base)


def test_cbis_patient_ids_name_the_woman_side_and_view():
    assert breast_key("Mass-Test_P_00173_LEFT_CC") == ("P_00173", "LEFT", "CC")
    assert breast_key("Calc-Training_P_00005_RIGHT_MLO_1") == ("P_00005", "RIGHT", "MLO")
    assert breast_key("P_00173", "L", "cc") == ("P_00173", "LEFT", "CC")
    assert breast_key("12345", "", "") == ("12345", "", "")
    rows = pd.DataFrame(
        {
            "patient_id": [
                "Mass-Test_P_00173_LEFT_CC",
                "Mass-Test_P_00173_LEFT_MLO",
                "Mass-Test_P_00173_RIGHT_CC",
                "Calc-Test_P_00173_LEFT_CC",
            ],
            "side": ["", "", "", ""],
            "view": ["", "", "", ""],
            "score": [1.0, 3.0, -5.0, 5.0],
        }
    )
    b = breast_scores(rows, ["score"], label=None).set_index(["patient_id", "side"])
    assert list(b.index) == [("P_00173", "LEFT"), ("P_00173", "RIGHT")]
    assert b.loc[("P_00173", "LEFT"), "score"] == pytest.approx(((1.0 + 5.0) / 2 + 3.0) / 2)
    assert b.loc[("P_00173", "RIGHT"), "score"] == -5.0
    per_image = image_breast_scores(rows, "score")
    assert per_image[0] == per_image[1] == per_image[3] == pytest.approx(3.0) and per_image[2] == -5.0


def test_rows_without_a_side_have_no_breast():
    rows = _rows().assign(side="")
    assert breast_scores(rows, ["score"]) is None
    assert np.isnan(image_breast_scores(rows, "score")).all()


def test_breast_block_scores_the_model_and_each_baseline_per_breast():
    rows = _rows().assign(age=lambda r: r["score"] * -1.0)
    block = breast_block(rows, ["age"])
    breasts = breast_level(rows, ["score", "age"])
    labels, groups = breasts["label"].to_numpy(int), breasts["patient_id"]
    assert block["auc"] == score_block(labels, breasts["score"].to_numpy(float), groups)["auc"]
    assert block["baselines"]["age"]["auc"] == pytest.approx(1 - block["auc"])
    assert breast_block(rows.drop(columns="side"), ["age"]) is None
