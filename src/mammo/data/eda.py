"""`mammo eda`: exploratory figures (PNG) and a Markdown summary of DATA/manifest.csv, before any training.

One function per figure; a figure whose columns are absent (e.g. a --table manifest has no mass shape) is skipped
and listed. Counts say their unit: findings (manifest rows), images (image_id) or women (patient_id).
No torch here: this is a data command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.data.manifest import read_manifest
from mammo.errors import DataError
from mammo.io.atomic import write_text
from mammo.io.figures import new_figure, save_figure

PATHOLOGY_COLORS = {"BENIGN": "#4c9be8", "BENIGN_WITHOUT_CALLBACK": "#9fd0a5", "MALIGNANT": "#e8694c"}
LABEL_NAMES = {0: "benign", 1: "malignant"}
LABEL_COLORS = {"benign": "#4c9be8", "malignant": "#e8694c"}
BLANK = "(none)"


@dataclass
class EdaResult:
    """What `run_eda` wrote: figure paths, skipped figures with the reason, the summary file and its numbers."""

    out: Path
    figures: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    @property
    def summary_path(self) -> Path:
        """The Markdown summary."""
        return self.out / "summary.md"

    def summary(self) -> str:
        """Two lines: the headline counts, and what was written (and skipped)."""
        n = self.numbers
        skipped = (
            f", skipped {len(self.skipped)} ({', '.join(s for s, _ in self.skipped)})" if self.skipped else ""
        )
        return (
            f"{n['findings']} findings on {n['images']} images of {n['women']} women "
            f"({n['malignant_images']} images malignant); {n['mixed_images']} mixed images, "
            f"{n['cross_split_women']} women in more than one split\n"
            f"{len(self.figures)} figures{skipped} -> {self.summary_path}"
        )


def _present(df: pd.DataFrame, *columns: str) -> bool:
    """True when every column exists and has at least one non-empty value."""
    return all(c in df.columns and (df[c].astype(str).str.strip() != "").any() for c in columns)


def _text(values: pd.Series) -> pd.Series:
    """Category labels as text, blanks shown as '(none)'."""
    s = values.astype(str).str.strip()
    return s.where(s != "", BLANK)


def _split_key(split: str) -> tuple[int, str]:
    """Sort key putting train, val, test first, then any other split name."""
    order = ("train", "val", "test")
    return (order.index(split) if split in order else len(order), split)


def _split_order(table: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """Rows of a per-split table in train, val, test order."""
    return table.loc[sorted(table.index, key=_split_key)]


def image_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per image: its split, woman, number of findings, label (any malignant) and mixed flag."""
    return df.groupby("image_id", sort=False).agg(
        split=("split", "first"),
        patient_id=("patient_id", "first"),
        findings=("label", "size"),
        label=("label", "max"),
        mixed=("label", lambda s: s.nunique() > 1),
    )


def women_by_split(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (woman, split): label = any malignant finding."""
    return df.groupby(["patient_id", "split"], sort=False).agg(label=("label", "max")).reset_index()


def _stacked_bars(ax, table: pd.DataFrame, colors: dict[str, str], horizontal: bool = False) -> None:
    """Bars of a category x class count table, stacked by class, with the class legend."""
    base = np.zeros(len(table))
    positions = np.arange(len(table))
    for cls in table.columns:
        values = table[cls].to_numpy(dtype=float)
        if horizontal:
            ax.barh(positions, values, left=base, height=0.8, color=colors.get(str(cls)), label=str(cls))
        else:
            ax.bar(positions, values, bottom=base, width=0.8, color=colors.get(str(cls)), label=str(cls))
        base += values
    labels = [str(i) for i in table.index]
    if horizontal:
        ax.set_yticks(positions, labels, fontsize=8)
    else:
        ax.set_xticks(positions, labels)
    ax.legend(fontsize=8)


def _with_value(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows whose `column` is filled (mass columns are empty on calc rows and the other way round)."""
    return df[df[column].astype(str).str.strip() != ""]


def _by_pathology(df: pd.DataFrame, column: str, path: Path, title: str, sort_numeric: bool = False) -> None:
    """Findings per category of `column`, stacked by pathology; categories sorted by count (or numerically)."""
    table = pd.crosstab(_text(df[column]), _text(df["pathology"]))
    if sort_numeric:
        key = pd.to_numeric(pd.Series(table.index, index=table.index), errors="coerce")
        table = table.loc[key.sort_values(na_position="last").index]
    else:
        table = table.loc[table.sum(axis=1).sort_values().index]
    horizontal = not sort_numeric
    fig = new_figure(7.0, max(3.5, 0.3 * len(table) + 1.5) if horizontal else 4.0)
    ax = fig.add_subplot()
    _stacked_bars(ax, table, PATHOLOGY_COLORS, horizontal=horizontal)
    ax.set_title(title)
    ax.set_xlabel("findings" if horizontal else column)
    ax.set_ylabel(column if horizontal else "findings")
    save_figure(fig, path)


def pathology_counts(df: pd.DataFrame, path: Path) -> None:
    """Findings per pathology (the seed's first figure), one bar per pathology value."""
    counts = _text(df["pathology"]).value_counts()
    fig = new_figure()
    ax = fig.add_subplot()
    bars = ax.bar(counts.index, counts.values, color=[PATHOLOGY_COLORS.get(k, "grey") for k in counts.index])
    ax.bar_label(bars)
    ax.set(title="Pathology of the findings", ylabel="findings")
    ax.tick_params(axis="x", labelsize=8)
    save_figure(fig, path)


def pathology_by_view(df: pd.DataFrame, path: Path) -> None:
    """Findings per view (CC, MLO, ...) stacked by pathology."""
    _by_pathology(df, "view", path, "Pathology by view", sort_numeric=True)


def density_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Findings per BI-RADS breast density (1-4) stacked by pathology."""
    _by_pathology(df, "breast_density", path, "Breast density vs pathology", sort_numeric=True)


def mass_shape_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Mass findings per shape stacked by pathology (irregular shapes lean malignant)."""
    _by_pathology(_with_value(df, "mass_shape"), "mass_shape", path, "Mass shape vs pathology")


def mass_margins_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Mass findings per margin type stacked by pathology (spiculated margins lean malignant)."""
    _by_pathology(
        _with_value(df, "mass_margins"),
        "mass_margins",
        path,
        "Mass margins vs pathology",
    )


def calc_type_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Calcification findings per morphology type stacked by pathology."""
    _by_pathology(
        _with_value(df, "calc_type"),
        "calc_type",
        path,
        "Calcification type vs pathology",
    )


def calc_distribution_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Calcification findings per distribution stacked by pathology."""
    _by_pathology(
        _with_value(df, "calc_distribution"),
        "calc_distribution",
        path,
        "Calcification distribution vs pathology",
    )


def subtlety_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Findings per subtlety rating (1 subtle - 5 obvious) stacked by pathology."""
    _by_pathology(df, "subtlety", path, "Subtlety vs pathology", sort_numeric=True)


def assessment_vs_pathology(df: pd.DataFrame, path: Path) -> None:
    """Findings per BI-RADS assessment stacked by pathology: the radiologist's call, a reference, never an input."""
    _by_pathology(df, "assessment", path, "BI-RADS assessment vs pathology", sort_numeric=True)


def image_sizes(df: pd.DataFrame, path: Path) -> None:
    """Full-image sizes (columns x rows), one point per image, coloured by image label."""
    img = df.groupby("image_id", sort=False).agg(
        rows=("image_rows", "first"), cols=("image_cols", "first"), label=("label", "max")
    )
    img["rows"] = pd.to_numeric(img["rows"], errors="coerce")
    img["cols"] = pd.to_numeric(img["cols"], errors="coerce")
    img = img.dropna(subset=["rows", "cols"])
    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    for label, name in LABEL_NAMES.items():
        sel = img[img["label"] == label]
        ax.scatter(
            sel["cols"], sel["rows"], s=8, alpha=0.6, color=LABEL_COLORS[name], label=f"{name} ({len(sel)})"
        )
    ax.set(title=f"Image sizes ({len(img)} images)", xlabel="columns (px)", ylabel="rows (px)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def findings_per_image(df: pd.DataFrame, path: Path) -> None:
    """How many images carry 1, 2, ... findings (several findings on one image is common in CBIS-DDSM)."""
    counts = image_table(df)["findings"].value_counts().sort_index()
    fig = new_figure()
    ax = fig.add_subplot()
    bars = ax.bar(counts.index.astype(str), counts.values, color="#7f7fbf")
    ax.bar_label(bars)
    ax.set(title="Findings per image", xlabel="findings on the image", ylabel="images")
    save_figure(fig, path)


def class_balance_by_split(df: pd.DataFrame, path: Path) -> None:
    """Benign/malignant per split, by image (any malignant finding) and by woman (any malignant image)."""
    fig = new_figure(9.0, 4.0)
    units = (("image", "images", image_table(df)), ("woman", "women", women_by_split(df)))
    for ax, (unit, units_label, table) in zip(fig.subplots(1, 2), units, strict=False):
        counts = _split_order(pd.crosstab(_text(table["split"]), table["label"].map(LABEL_NAMES)))
        _stacked_bars(ax, counts, LABEL_COLORS)
        for i, (_, row) in enumerate(counts.iterrows()):
            share = row.get("malignant", 0) / row.sum()
            ax.text(i, row.sum(), f"{share:.0%} malignant", ha="center", va="bottom", fontsize=8)
        ax.margins(y=0.1)
        ax.set(title=f"Class balance by {unit}", xlabel="split", ylabel=units_label)
    save_figure(fig, path)


def women_per_split(df: pd.DataFrame, path: Path) -> None:
    """Distinct women per split; a woman in two splits is counted in both (and listed in the summary)."""
    counts = _split_order(df.groupby(_text(df["split"]))["patient_id"].nunique())
    fig = new_figure(5.0, 4.0)
    ax = fig.add_subplot()
    bars = ax.bar(counts.index, counts.values, color="#8c6bb1")
    ax.bar_label(bars)
    ax.set(title="Women per split", xlabel="split", ylabel="women")
    save_figure(fig, path)


FigureFn = Callable[[pd.DataFrame, Path], None]
FIGURES: list[tuple[str, tuple[str, ...], FigureFn]] = [
    ("pathology_counts", ("pathology",), pathology_counts),
    ("pathology_by_view", ("view", "pathology"), pathology_by_view),
    ("density_vs_pathology", ("breast_density",), density_vs_pathology),
    ("mass_shape_vs_pathology", ("mass_shape",), mass_shape_vs_pathology),
    ("mass_margins_vs_pathology", ("mass_margins",), mass_margins_vs_pathology),
    ("calc_type_vs_pathology", ("calc_type",), calc_type_vs_pathology),
    ("calc_distribution_vs_pathology", ("calc_distribution",), calc_distribution_vs_pathology),
    ("subtlety_vs_pathology", ("subtlety",), subtlety_vs_pathology),
    ("assessment_vs_pathology", ("assessment",), assessment_vs_pathology),
    ("image_sizes", ("image_rows", "image_cols"), image_sizes),
    ("findings_per_image", ("image_id",), findings_per_image),
    ("class_balance_by_split", ("split",), class_balance_by_split),
    ("women_per_split", ("split", "patient_id"), women_per_split),
]


def compute_numbers(df: pd.DataFrame) -> dict:
    """The summary's numbers: totals, per-split counts by finding/image/woman, mixed images, cross-split women."""
    images = image_table(df)
    splits = df.groupby("patient_id")["split"].nunique()
    cross = sorted(splits[splits > 1].index)
    per_split = {}
    for split, rows in sorted(df.groupby(_text(df["split"])), key=lambda kv: _split_key(kv[0])):
        img = images[images.index.isin(rows["image_id"])]
        women = women_by_split(rows)
        per_split[split] = {
            "findings": len(rows),
            "malignant_findings": int(rows["label"].sum()),
            "images": len(img),
            "malignant_images": int(img["label"].sum()),
            "women": int(rows["patient_id"].nunique()),
            "malignant_women": int(women["label"].sum()),
        }
    return {
        "findings": len(df),
        "images": len(images),
        "women": int(df["patient_id"].nunique()),
        "malignant_findings": int(df["label"].sum()),
        "malignant_images": int(images["label"].sum()),
        "multi_finding_images": int((images["findings"] > 1).sum()),
        "mixed_images": int(images["mixed"].sum()),
        "cross_split_women": len(cross),
        "cross_split_women_ids": cross,
        "pathology": {k: int(v) for k, v in _text(df["pathology"]).value_counts().items()},
        "abnormality_type": {k: int(v) for k, v in _text(df["abnormality_type"]).value_counts().items()},
        "per_split": per_split,
    }


def summary_markdown(
    data_dir: Path, numbers: dict, figures: list[Path], skipped: list[tuple[str, str]]
) -> str:
    """The Markdown summary: headline counts, a per-split table, leak and label checks, figure links."""
    n = numbers
    lines = [
        f"# EDA of `{data_dir}`",
        "",
        f"- **{n['findings']} findings** on **{n['images']} images** of **{n['women']} women**",
        f"- malignant: {n['malignant_findings']} findings, {n['malignant_images']} images "
        "(an image is malignant when any of its findings is)",
        "- findings by pathology: " + ", ".join(f"{k} {v}" for k, v in n["pathology"].items()),
        "- findings by abnormality type: " + ", ".join(f"{k} {v}" for k, v in n["abnormality_type"].items()),
        f"- images with more than one finding: {n['multi_finding_images']}; "
        f"with mixed benign/malignant findings: {n['mixed_images']}",
        f"- women in more than one split: {n['cross_split_women']}"
        + (
            f" ({', '.join(n['cross_split_women_ids'][:20])}{' ...' if n['cross_split_women'] > 20 else ''})"
            if n["cross_split_women"]
            else ""
        ),
        "",
        "## Per split",
        "",
        "| split | findings | malignant findings | images | malignant images | women | malignant women |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, s in n["per_split"].items():
        lines.append(
            f"| {split} | {s['findings']} | {s['malignant_findings']} | {s['images']} | "
            f"{s['malignant_images']} | {s['women']} | {s['malignant_women']} |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    if skipped:
        lines += ["", "## Skipped figures", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped]
    return "\n".join(lines) + "\n"


def run_eda(data_dir: str | os.PathLike, out: str | os.PathLike) -> EdaResult:
    """Write every figure the manifest's columns allow, plus summary.md, into `out`.

    Args:
        data_dir: DATA folder written by ingest.
        out: folder for the PNG figures and summary.md.

    Example:
        >>> from mammo.data import run_eda
        >>> print(run_eda("data/cbis", "eda/cbis").summary())
    """
    data_dir, out = Path(data_dir), Path(out)
    df = read_manifest(data_dir)
    if df.empty:
        raise DataError(
            f"{data_dir / 'manifest.csv'}: no rows; re-run `mammo ingest` on a download with images"
        )
    result = EdaResult(out=out)
    for name, columns, draw in FIGURES:
        absent = [c for c in columns if not _present(df, c)]
        if absent:
            result.skipped.append((name, f"no values in column(s) {', '.join(absent)}"))
            continue
        path = out / f"{name}.png"
        draw(df, path)
        result.figures.append(path)
    result.numbers = compute_numbers(df)
    write_text(
        summary_markdown(data_dir, result.numbers, result.figures, result.skipped), result.summary_path
    )
    return result
