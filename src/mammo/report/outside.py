"""The report's section on images outside the run's data: an `explain` folder's probabilities and overlays.

The demo explains real films with a model trained on synthetic ones; this section shows them with the model's
own input beside each heatmap, marked as outside the training data, so nobody reads them as validated results.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mammo.errors import UserError
from mammo.report.collect import fmt
from mammo.report.render import figures, img_tag, paragraph, table


def _name(path: str) -> str:
    """The last two parts of a path: enough to tell the files apart."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def check_outside(folder: Path) -> None:
    """UserError unless `folder` holds an explain.csv: checked before the run's model loads."""
    if not folder.exists():
        raise UserError(f"--outside {folder}: no such folder; give the --out folder of `mammo explain`")
    if not (folder / "explain.csv").is_file():
        raise UserError(f"{folder}: no explain.csv; run `mammo explain RUN IMAGE... --out {folder}` first")


def outside_section(folder: Path, synthetic: bool) -> tuple[str, int]:
    """HTML for an explain folder (explain.csv + overlays) and the number of images it inlines."""
    check_outside(folder)
    rows = pd.read_csv(folder / "explain.csv", dtype=str, keep_default_na=False)
    trained_on = "synthetic images only" if synthetic else "its own data only"
    parts = [
        paragraph(
            f"Outside the training data: these {len(rows)} images are not in this run's training, validation "
            f"or test splits, and the model was trained on {trained_on}. Nothing here was validated: the "
            "probabilities show that the run reads these files and where its heatmap points, not that they "
            "are right.",
            "warn",
        ),
        paragraph(
            "Each picture is what the model sees (the breast cropped out of the film: no borders, no burned-in "
            "labels; mirrored so the chest wall is on the left; resized to the run's input) beside its "
            "heatmap (hot = evidence for malignant).",
            "muted",
        ),
    ]
    listing = pd.DataFrame(
        {
            "image": rows["image"].map(_name),
            "malignant probability": rows["probability"].map(lambda v: fmt(float(v)) if v else ""),
            "above threshold": [
                "" if r["error"] else ("yes" if r["prediction"] == "1" else "no") for _, r in rows.iterrows()
            ],
            "note": rows["note"] if "note" in rows.columns else "",
            "error": rows["error"],
        }
    )
    parts.append(table(listing, numeric=("malignant probability",)))
    tags = []
    for _, r in rows.iterrows():
        overlay = Path(r["overlay"]) if r["overlay"] else None
        if r["error"] or overlay is None or not overlay.is_file():
            continue
        caption = f"{_name(r['image'])}: malignant probability {fmt(float(r['probability']))}"
        tags.append(img_tag(overlay.read_bytes(), f"outside the training data: {_name(r['image'])}", caption))
    if tags:
        parts.append(figures(tags, "figs outside"))
    else:
        parts.append(paragraph(f"no overlay could be drawn (see {folder / 'explain.csv'})"))
    return "".join(parts), len(tags)
