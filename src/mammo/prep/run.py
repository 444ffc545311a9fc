"""`mammo prepare`: DATA/manifest.csv -> PREP/ (16-bit PNGs, dataset.csv, prepare.json, rejected.csv).

One task per full image (it is read once, for all its samples), run over `workers` processes
(`mammo.prep.pool`), or on a Dask cluster (`cluster`, `mammo.io.cluster`). Each finished sample is appended to PREP/.progress.jsonl (its first line holds the
parameters), so a killed run rerun with the same parameters redoes only what is missing; processing is
deterministic, so redone files are byte-identical (`mammo.prep.resume`). A lock file keeps a second run out
of the same folder. dataset.csv, rejected.csv and prepare.json are written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from tqdm import tqdm

import mammo
from mammo.data.manifest import SPLITS, read_manifest, write_rejected
from mammo.data.provenance import read_provenance
from mammo.errors import DataError, UserError
from mammo.io.atomic import check_output_dir, write_csv, write_json
from mammo.io.cluster import check_cluster, connect
from mammo.prep.plan import ImageTask, Item, build_tasks, data_path, select_rows
from mammo.prep.pool import run_tasks
from mammo.prep.resume import PROGRESS, hold_lock, open_output
from mammo.prep.splits import RANDOM_TEST_FRACTION, check_disjoint, plan_splits
from mammo.prep.summary import PrepareResult, processing_note, split_counts, tiny_sources

if TYPE_CHECKING:
    from distributed import Client

PREP_FORMAT = (
    "mammo-prep/2"  # bump when processing changes, so old PREP folders are not silently mixed with new files
)
TASKS = ("whole", "roi")
MIN_SIZE = 16
# Largest output side: full-field detectors are about 4096 pixels on the long side, so a larger PNG only
# upsamples, and at 100000 one image would need ~20 GB; models here train at 224-1024.
MAX_SIZE = 4096
LEAD_COLUMNS = ["sample_id", "image", "label", "patient_id", "split", "image_id"]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    task: str = "whole",
    size: int = 512,
    abnormality: str = "all",
    view: str = "all",
    split: str = "official",
    val_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 2,
    overwrite: bool = False,
    context: float = 0.5,
    cluster: str | None = None,
) -> PrepareResult:
    """Make PREP/ from DATA/: whole-breast or lesion crops as 16-bit PNGs, splits by woman, resumable.

    `workers` = 0 processes the images in this process; more runs them in a forkserver pool of that many
    processes (safe after threads), so a Python script calling this must do so under
    `if __name__ == "__main__":`, as for any multiprocessing code.

    Args:
        data_dir: DATA folder written by ingest.
        out: PREP folder for images/, dataset.csv, prepare.json, rejected.csv; a rerun resumes it.
        task: "whole" (one sample per image, the breast cropped) or "roi" (one crop per finding).
        size: side N of the N x N output PNGs, 16 to 4096.
        abnormality: keep findings of this type: "mass", "calc" or "all".
        view: keep images of this view: "CC", "MLO" or "all".
        split: "official" train/test (validation carved from train by woman) or "random" 70/20/10 by woman.
        val_fraction: share of the train women moved to validation.
        seed: seed of the validation/random split.
        workers: processes (0: in this process).
        overwrite: replace an existing PREP made with other parameters (refused without it; same ones resume).
        context: roi: padding around the lesion box, as a fraction of its side.
        cluster: a Dask scheduler address, or local:N for a LocalCluster of N processes, that runs the images
            instead of the local pool (`mammo.io.cluster`; `workers` is then unused). Its workers must see
            DATA's files and `out` at the same paths.

    Example:
        >>> from mammo.prep import prepare
        >>> print(prepare("data/cbis", "prep/whole512", task="whole", size=512).summary())
    """
    if task not in TASKS:
        raise UserError(f"--task must be whole or roi, got {task!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(
            f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels (the long side of a mammogram), got {size}"
        )
    if context < 0:
        raise UserError(f"--context must be >= 0 (a fraction of the lesion box side), got {context}")
    if workers < 0:
        raise UserError(f"--workers must be 0 (in this process) or more, got {workers}")
    data_dir, out = Path(data_dir), Path(out)
    check_output_dir(out)
    manifest = read_manifest(data_dir)
    df = select_rows(manifest, abnormality, view)
    if df.empty:
        raise DataError(f"{data_dir}: no manifest rows left with --abnormality {abnormality} --view {view}")
    if (df["patient_id"] == "").any():
        raise DataError(
            f"{data_dir}/manifest.csv: rows without patient_id; splits need the woman of every image"
        )
    bad_split = ~df["split"].isin(["", *SPLITS])
    if bad_split.any():
        row = int(bad_split.idxmax())
        raise DataError(
            f"{data_dir / 'manifest.csv'}: row {row + 2} has split {df.at[row, 'split']!r}, not train, val or test "
            "(or empty); fix the manifest, or ingest again (ingest reads training/validation/testing)"
        )
    plan = plan_splits(df, split, val_fraction, seed)
    df = df.assign(
        split_prep=plan.assign(df["patient_id"]),
        image_path=[data_path(p, data_dir) for p in df["image_path"]],
        mask_path=[data_path(p, data_dir) for p in df["mask_path"]],
    )

    compared = {
        "format": PREP_FORMAT,
        "task": task,
        "size": size,
        "context": context if task == "roi" else None,
        "abnormality": abnormality,
        "view": view,
        "split": split,
        "val_fraction": val_fraction,
        "random_test_fraction": RANDOM_TEST_FRACTION if split == "random" else None,
        "seed": seed,
        "manifest_sha256": _file_sha256(data_dir / "manifest.csv"),
    }
    check_cluster(cluster)
    with connect(cluster) if cluster else nullcontext() as client, hold_lock(out):
        done = open_output(out, compared, overwrite)
        tasks, rejected = build_tasks(df, task, size, context, out / "images")

        def finished(item: Item) -> bool:
            return (
                "made" in done.get(item.sample_id, {})
                and (out / "images" / f"{item.sample_id}.png").is_file()
            )

        pending = [t for t in ((t, [i for i in t.items if not finished(i)]) for t in tasks) if t[1]]
        todo = [
            ImageTask(t.image_path, t.task, t.size, t.context, t.images_dir, tuple(items))
            for t, items in pending
        ]
        n_made = _process(todo, workers, client, out / PROGRESS, done)

        rows, warnings = [], []
        for t in tasks:
            for item in t.items:
                outcome = done[item.sample_id]
                if "made" in outcome:
                    rows.append({**item.row, **outcome["made"]})
                else:
                    rejected.append(outcome["rejected"])
        rejected_df = pd.DataFrame(rejected, columns=["path_or_row", "reason"])
        write_rejected(rejected_df, out)
        if not rows:
            raise DataError(f"no sample could be prepared from {data_dir}; see {out / 'rejected.csv'}")
        dataset = pd.DataFrame(rows)
        dataset = dataset[LEAD_COLUMNS + [c for c in dataset.columns if c not in LEAD_COLUMNS]]
        check_disjoint(dataset)
        counts = split_counts(dataset)
        warnings += [f"split {s} is empty" for s, c in counts.items() if c["samples"] == 0]
        warnings += tiny_sources(dataset)
        write_csv(dataset, out / "dataset.csv")
        info = {
            **compared,
            "mammo_version": mammo.__version__,
            "data_dir": str(data_dir.resolve()),
            "out": str(out.resolve()),
            "workers": workers,
            "cluster": cluster,
            "processing": processing_note(task),
            "provenance": read_provenance(data_dir),
            "counts": {**counts, "rejected": len(rejected_df)},
            "splits": {
                "val_source": plan.val_source,
                "women_split_at_random": plan.n_random,
                "moved_to_test": plan.moved_to_test,
                "moved_to_val": plan.moved_to_val,
            },
        }
        write_json(info, out / "prepare.json")
        return PrepareResult(
            out, task, size, counts, len(rejected_df), plan, n_made, len(rows) - n_made, warnings
        )


def _process(
    todo: list[ImageTask], workers: int, client: Client | None, progress: Path, done: dict[str, dict]
) -> int:
    """Run pending tasks with a progress bar, logging each outcome as it arrives; returns images written."""
    made = 0
    with open(progress, "a") as log, tqdm(total=len(todo), unit="img", desc="prepare") as bar:
        for outcomes in run_tasks(todo, min(workers, len(todo)), client):
            for o in outcomes:
                done[o["sample_id"]] = o
                made += "made" in o
                log.write(json.dumps(o) + "\n")
            log.flush()
            bar.update()
    return made
