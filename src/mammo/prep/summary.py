"""What `prepare` reports: the result and its summary, counts per split, warnings, the processing note."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mammo.io.limits import MIN_SOURCE_SIDE
from mammo.prep.splits import SplitPlan


@dataclass
class PrepareResult:
    """What `prepare` made: counts per split and class, rejections, split decisions, where it is."""

    out: Path
    task: str
    size: int
    counts: dict[str, dict[str, int]]
    n_rejected: int
    plan: SplitPlan
    n_made: int = 0
    n_reused: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable summary for the CLI."""
        total = sum(c["samples"] for c in self.counts.values())
        lines = [f"prepared {total} {self.task} samples ({self.size}x{self.size} 16-bit PNG) in {self.out}"]
        for split, c in self.counts.items():
            lines.append(
                f"  {split:5s}: {c['samples']:5d} (benign {c['benign']}, malignant {c['malignant']}), "
                f"{c['women']} women"
            )
        lines.append(f"  made {self.n_made} images, reused {self.n_reused} from an earlier run")
        val = {
            "manifest": "validation kept as given in the manifest",
            "carved": "validation carved out of train by woman (stratified, seeded)",
            "random": "random 70/20/10 split by woman (stratified, seeded)",
        }[self.plan.val_source]
        lines.append(f"  {val}")
        if self.plan.val_source != "random" and self.plan.n_random:
            lines.append(f"  {self.plan.n_random} women with no split in the manifest were split at random")
        if self.plan.moved_to_test:
            lines.append(
                f"  {len(self.plan.moved_to_test)} women listed in train and test were put in test: "
                + ", ".join(self.plan.moved_to_test[:10])
                + (" ..." if len(self.plan.moved_to_test) > 10 else "")
            )
        if self.plan.moved_to_val:
            lines.append(f"  {len(self.plan.moved_to_val)} women listed in train and val were put in val")
        lines.append(
            f"  rejected: {self.n_rejected}"
            + (f" (see {self.out / 'rejected.csv'})" if self.n_rejected else "")
        )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def split_counts(dataset: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Samples, benign, malignant and women per split, in train/val/test order."""
    counts = {}
    for split in ("train", "val", "test"):
        part = dataset[dataset["split"] == split]
        counts[split] = {
            "samples": len(part),
            "benign": int((part["label"] == 0).sum()),
            "malignant": int((part["label"] == 1).sum()),
            "women": int(part["patient_id"].nunique()),
        }
    return counts


def tiny_sources(dataset: pd.DataFrame) -> list[str]:
    """A warning naming sources smaller than MIN_SOURCE_SIDE on a side (a mammogram never is)."""
    images = dataset.drop_duplicates("image_id")
    tiny = images[images[["source_rows", "source_cols"]].min(axis=1) < MIN_SOURCE_SIDE]
    if tiny.empty:
        return []
    first = tiny.iloc[0]
    return [
        f"{len(tiny)} source images are smaller than {MIN_SOURCE_SIDE} pixels on a side (first: "
        f"{first['source_path']}, {first['source_rows']}x{first['source_cols']}); are these mammograms?"
    ]


def processing_note(task: str) -> dict:
    """How the pixels were made, for people and for predict (which must do the same)."""
    common = {
        "dtype": "uint16 PNG 0..65535 (8-bit sources x257); DICOM modality/VOI LUT, MONOCHROME1 inverted",
        "orientation": "mirrored when the breast's mass lies on the right, so the chest wall is on the left",
        "polarity": "inverted (max - x) when more of the border frame is near the top grey level than the bottom "
        "(bright background); dataset.csv `inverted` says which were",
    }
    if task == "whole":
        return {
            **common,
            "whole": "breast = largest component of a threshold at the emptiest grey level between the "
            "background peak and midway to Otsu (on a ~512-pixel subsample, flat edge bars cleared, opened); "
            "crop to its box, pixels outside it zeroed; resize keeping "
            "the aspect ratio (area averaging), zero-pad right and top/bottom to size x size",
        }
    return {
        **common,
        "roi": "square window of side (1 + 2 * context) x the lesion box's long side, centred on it, "
        "shifted inside the image (zero-padded only when larger than it); resized to size x size",
    }
