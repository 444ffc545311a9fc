"""Breast-level scores: one score per breast (woman + side) from its own views, and nothing else.

A breast's score is the mean over its views (CC, MLO, ...) of the mean logit of that view's images. Two means,
so that no input of the score comes from outside the breast or from a count: the other breast's images never
enter it, and duplicated rows, a repeated view or a missing view change no weight (a breast with one view gets
that view's score). In rsna-screening-640 "is the other breast in the set" alone scores AUC 0.97, so a sum, a
max over a varying number of images, or any per-woman pooling would read the label from the data's shape.

The woman comes from `patient_id`, except that a CBIS-DDSM PatientID (`Mass-Test_P_00173_LEFT_CC`) names the
woman, the side and the view in one string: `breast_key` reads all three from it. Pure pandas, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

CBIS_ID = re.compile(
    r"^(?:mass|calc)-(?:training|test)_(P_\d+)_(LEFT|RIGHT)_(CC|MLO)(?:_\d+)?$", flags=re.IGNORECASE
)
SIDES = {"L": "LEFT", "LEFT": "LEFT", "R": "RIGHT", "RIGHT": "RIGHT"}


def breast_key(patient_id: str, side: str = "", view: str = "") -> tuple[str, str, str]:
    """(woman, side LEFT/RIGHT or '', view) of one image; a CBIS-DDSM PatientID gives all three.

    >>> breast_key("Mass-Test_P_00173_LEFT_CC")
    ('P_00173', 'LEFT', 'CC')
    """
    woman, side, view = str(patient_id).strip(), str(side).strip().upper(), str(view).strip().upper()
    m = CBIS_ID.match(woman)
    if m:
        woman = m.group(1).upper()
        side = side or m.group(2).upper()
        view = view or m.group(3).upper()
    return woman, SIDES.get(side, ""), view


def with_breast_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with columns `woman`, `breast_side` and `breast_view` from patient_id, side and view."""
    n = len(rows)
    ids = rows["patient_id"].astype(str) if "patient_id" in rows else pd.Series([""] * n, index=rows.index)
    sides = rows["side"].fillna("").astype(str) if "side" in rows else pd.Series([""] * n, index=rows.index)
    views = rows["view"].fillna("").astype(str) if "view" in rows else pd.Series([""] * n, index=rows.index)
    keys = [breast_key(p, s, v) for p, s, v in zip(ids, sides, views, strict=True)]
    out = rows.copy()
    out["woman"] = [k[0] for k in keys]
    out["breast_side"] = [k[1] for k in keys]
    out["breast_view"] = [k[2] for k in keys]
    return out


def breast_scores(
    rows: pd.DataFrame, score_columns: Sequence[str], label: str | None = "label"
) -> pd.DataFrame | None:
    """One row per breast with a woman and a side: each score the mean over views of the view's mean score.

    Columns: patient_id (the woman), side, views ('CC+MLO'), n_images, `label` (max over the breast's images,
    when given) and each of `score_columns`. Rows without a woman or a side and NaN scores are left out (a
    breast whose images all lack a score gets NaN). None when no row has a side.
    """
    keyed = with_breast_keys(rows)
    keyed = keyed[(keyed["woman"] != "") & (keyed["breast_side"] != "")]
    if keyed.empty:
        return None
    breast = ["woman", "breast_side"]
    per_view = keyed.groupby([*breast, "breast_view"], sort=True)[list(score_columns)].mean()
    out = per_view.groupby(level=[0, 1], sort=True).mean()
    grouped = keyed.groupby(breast, sort=True)
    out["views"] = grouped["breast_view"].agg(lambda v: "+".join(sorted(set(v) - {""})))
    out["n_images"] = grouped.size()
    if label is not None:
        out[label] = grouped[label].max()
    out = out.reset_index().rename(columns={"woman": "patient_id", "breast_side": "side"})
    first = ["patient_id", "side", "views", "n_images", *([label] if label is not None else [])]
    return out[[*first, *score_columns]]


def image_breast_scores(rows: pd.DataFrame, score: str) -> np.ndarray:
    """Per input row, the score of its breast (NaN for a row without a woman or side): breast scores by image."""
    breasts = breast_scores(rows, [score], label=None)
    keyed = with_breast_keys(rows)
    if breasts is None:
        return np.full(len(rows), np.nan)
    lookup = breasts.set_index(["patient_id", "side"])[score]
    return np.array(
        [
            float(lookup.get((w, s), np.nan)) if w and s else np.nan
            for w, s in zip(keyed["woman"], keyed["breast_side"], strict=True)
        ]
    )
