"""`mammo prepare`: DATA/manifest.csv -> PREP/ (16-bit PNGs, dataset.csv, prepare.json, rejected.csv).

One task per full image (it is read once, for all its samples), run over `workers` processes. Each
finished sample is appended to PREP/.progress.jsonl (its first line holds the parameters), so a killed run
rerun with the same parameters redoes only what is missing; processing is deterministic, so redone files
are byte-identical. dataset.csv, rejected.csv and prepare.json are written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

import mammo
from mammo.data.manifest import BOX_COLUMNS, SPLITS, read_manifest, write_rejected
from mammo.errors import DataError, UserError, without_path
from mammo.io.atomic import write_csv, write_json, write_text
from mammo.io.dicom import read_raw_pixels
from mammo.io.images import is_dicom_path, read_image, to_uint16, write_png16
from mammo.prep.breast import find_breast, prepare_whole
from mammo.prep.roi import mask_box, prepare_roi, table_box
from mammo.prep.splits import RANDOM_TEST_FRACTION, SplitPlan, check_disjoint, plan_splits

FORMAT = (
    "mammo-prep/1"  # bump when processing changes, so old PREP folders are not silently mixed with new files
)
PROGRESS = ".progress.jsonl"
OUTPUTS = ("dataset.csv", "prepare.json", "rejected.csv", PROGRESS)
TASKS = ("whole", "roi")
MIN_SIZE = 16
# Largest output side: full-field detectors are about 4096 pixels on the long side, so a larger PNG only
# upsamples, and at 100000 one image would need ~20 GB; models here train at 224-1024.
MAX_SIZE = 4096
# Sources smaller than this on a side are prepared, with a warning: no mammogram is (thumbnails, icons, masks).
MIN_SOURCE_SIDE = 64
# Subgroup fields of screening tables (e.g. RSNA's site, machine, age): carried for reports, never model inputs.
SUBGROUP_META = ["age", "site_id", "machine_id", "density"]
WHOLE_META = [
    "side",
    "view",
    "abnormality_type",
    "pathology",
    "assessment",
    "breast_density",
    "subtlety",
    *SUBGROUP_META,
]
ROI_META = [*WHOLE_META, "abnormality_id", "mass_shape", "mass_margins", "calc_type", "calc_distribution"]
LEAD_COLUMNS = ["sample_id", "image", "label", "patient_id", "split", "image_id"]
PROCESS_COLUMNS = ["source_rows", "source_cols", "crop_x0", "crop_y0", "crop_x1", "crop_y1", "flipped"]


@dataclass(frozen=True)
class Item:
    """One sample to make from an image: its id, its dataset.csv fields so far, (roi) its lesion."""

    sample_id: str
    row: dict
    mask_path: str = ""
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class ImageTask:
    """Everything a worker needs to turn one full image into its samples."""

    image_path: str
    task: str
    size: int
    context: float
    images_dir: str
    items: tuple[Item, ...]


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


def safe_id(text: str) -> str:
    """A file-name-safe unique id for `text`: itself when already safe, else a short readable form + hash.

    A path (a table's image_id) becomes its folder and file stem: /data/P1/left.png -> P1_left-<hash>.
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    if clean == text and len(clean) <= 100:
        return clean
    parts = re.split(r"[/\\]+", text.strip("/\\"))
    if len(parts) > 1:
        parts[-1] = Path(parts[-1]).stem
        clean = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts[-2:])).strip("._-")
    return f"{clean[:80]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def load_image(path: str) -> np.ndarray:
    """Read a full image as uint16 (DICOM with its LUTs, other formats scaled to 16 bits)."""
    return to_uint16(read_image(path))


def load_mask(path: str) -> np.ndarray:
    """Read a lesion mask as stored (no LUT or inversion), so nonzero means lesion."""
    return read_raw_pixels(path) if is_dicom_path(path) else read_image(path)


def _lesion_box(item: Item, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A finding's box from its mask file, else from the manifest's numbers; raises with a reason."""
    if item.mask_path:
        mask = load_mask(item.mask_path)
        if mask.shape[:2] != shape:
            raise ValueError(
                f"mask {item.mask_path} is {mask.shape[0]}x{mask.shape[1]}, image is {shape[0]}x{shape[1]}"
            )
        box = mask_box(mask)
        if box is None:
            raise ValueError(f"mask {item.mask_path} is empty")
        return box
    return table_box(*item.box, shape)


def _png_path(task: ImageTask, item: Item) -> Path:
    return Path(task.images_dir) / f"{item.sample_id}.png"


def _reason(exc: Exception, path: str) -> str:
    """One line for rejected.csv: the error without its path; the exception type when it is not ours."""
    text = without_path(exc, path)
    return text if isinstance(exc, (UserError, ValueError)) else f"{type(exc).__name__}: {text}"


def process_image(task: ImageTask) -> list[dict]:
    """Read one image, make and write its samples; per item {sample_id, made} or {sample_id, rejected}.

    `made` holds what processing adds to the sample's dataset.csv row (source size, crop window, flip).
    """
    try:
        img = load_image(task.image_path)
        if task.task == "whole":
            out, breast = prepare_whole(img, task.size)
        else:
            breast = find_breast(img)
    except Exception as exc:  # a bad image is reported and the run goes on
        return [
            {"sample_id": it.sample_id, "rejected": [task.image_path, _reason(exc, task.image_path)]}
            for it in task.items
        ]
    outcomes = []
    for item in task.items:
        try:
            if task.task == "roi":
                out, window = prepare_roi(
                    img, _lesion_box(item, img.shape[:2]), task.size, task.context, breast.flip
                )
            else:
                window = breast.box
            write_png16(out, _png_path(task, item))
        except Exception as exc:
            where = item.mask_path or task.image_path
            outcomes.append({"sample_id": item.sample_id, "rejected": [where, _reason(exc, where)]})
            continue
        made = dict(zip(PROCESS_COLUMNS, [*img.shape[:2], *window, int(breast.flip)], strict=True))
        outcomes.append({"sample_id": item.sample_id, "made": made})
    return outcomes


def _init_worker() -> None:
    """One OpenCV thread per worker process, so `--workers` is the number of cores used."""
    cv2.setNumThreads(1)


@contextmanager
def _single_thread_cv2() -> Iterator[None]:
    """Run OpenCV single-threaded in this process for a while (workers=1), then restore its setting."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def run_tasks(tasks: list[ImageTask], workers: int) -> Iterator[list[dict]]:
    """Process tasks in this process (workers=1) or in a process pool, yielding outcomes as they finish."""
    if workers == 1:
        with _single_thread_cv2():
            yield from map(process_image, tasks)
        return
    # forkserver, not fork: forking a process that already ran threads (ingest's header pool, tqdm's monitor,
    # OpenCV's pool) can deadlock the child on a lock held by a thread that does not exist there.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mammo.prep.run"])  # workers fork from a server that has imported us once
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        for future in as_completed([pool.submit(process_image, t) for t in tasks]):
            yield future.result()
    except BrokenProcessPool:
        raise DataError(
            "a prepare worker process died (a decoder crash on some image, or, from a Python script, a call "
            "outside `if __name__ == '__main__':`); rerun to resume, or use --workers 1 to see which file"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: drop the queue, do not finish it


def select_rows(df: pd.DataFrame, abnormality: str, view: str) -> pd.DataFrame:
    """Manifest rows kept by --abnormality and --view."""
    if abnormality not in ("mass", "calc", "all"):
        raise UserError(f"--abnormality must be mass, calc or all, got {abnormality!r}")
    if view not in ("CC", "MLO", "all"):
        raise UserError(f"--view must be CC, MLO or all, got {view!r}")
    keep = pd.Series(True, index=df.index)
    if abnormality != "all":
        keep &= df["abnormality_type"].str.lower().str.startswith(abnormality)
    if view != "all":
        keep &= df["view"].str.upper() == view
    return df[keep]


def _meta(rows: pd.DataFrame, columns: list[str]) -> dict:
    return {c: rows[c].iloc[0] for c in columns if c in rows.columns}


def _max_number(values: pd.Series) -> str:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return str(int(numbers.max())) if len(numbers) else ""


def whole_row(rows: pd.DataFrame) -> dict:
    """dataset.csv fields of an image from its findings: malignant if any is; highest BI-RADS, subtlety."""
    label = int(rows["label"].max())
    first = rows[rows["label"] == label].iloc[[0]]
    row = _meta(first, WHOLE_META)
    row["abnormality_type"] = "|".join(sorted(set(rows["abnormality_type"]) - {""}))
    for col in ("assessment", "subtlety"):
        if col in rows.columns:
            row[col] = _max_number(rows[col])
    return {"label": label, **row, "n_findings": len(rows)}


def _number_box(row: pd.Series) -> tuple[float, float, float, float] | None:
    """The manifest's lesion box for a finding; None when absent; ValueError when not numbers."""
    values = [str(row.get(c, "")).strip() for c in BOX_COLUMNS]
    if not all(values):
        return None
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ValueError(f"lesion box {values} is not numeric") from None


def _roi_items(rows: pd.DataFrame, common: dict, new_id: Callable[[str], str], rejected: list) -> list[Item]:
    """One item per finding of an image; a finding with no mask and no usable box goes to `rejected`."""
    items = []
    for k, (index, finding) in enumerate(rows.iterrows(), start=1):
        number = finding["abnormality_id"] or str(k)
        where = f"{common['image_id']} finding {number}"
        try:
            box = _number_box(finding)
        except ValueError as exc:
            rejected.append([where, str(exc)])
            continue
        if not finding["mask_path"] and box is None:
            rejected.append([where, "no mask_path and no x_min..y_max lesion box; give one to make an roi"])
            continue
        sid = new_id(f"{safe_id(common['image_id'])}_{safe_id(number)}")
        row = {"sample_id": sid, "image": f"images/{sid}.png", "label": int(finding["label"]), **common}
        row |= _meta(rows.loc[[index]], ROI_META)
        row |= {"source_path": finding["image_path"], "mask_path": finding["mask_path"]}
        items.append(Item(sid, row, finding["mask_path"], box))
    return items


def build_tasks(
    df: pd.DataFrame, task: str, size: int, context: float, images_dir: Path
) -> tuple[list[ImageTask], list[list[str]]]:
    """Group manifest rows by image into tasks (manifest order); findings with no lesion location rejected."""
    tasks, rejected, used = [], [], set()

    def new_id(sid: str) -> str:
        base, n = sid, 1
        while sid in used:
            n += 1
            sid = f"{base}_{n}"
        used.add(sid)
        return sid

    for image_id, rows in df.groupby("image_id", sort=False):
        first = rows.iloc[0]
        common = {"patient_id": first["patient_id"], "split": first["split_prep"], "image_id": image_id}
        if task == "whole":
            sid = new_id(safe_id(image_id))
            row = {"sample_id": sid, "image": f"images/{sid}.png", **whole_row(rows), **common}
            items = [Item(sid, row | {"source_path": first["image_path"]})]
        else:
            items = _roi_items(rows, common, new_id, rejected)
        if items:
            tasks.append(ImageTask(first["image_path"], task, size, context, str(images_dir), tuple(items)))
    return tasks, rejected


def _resolve(path: str, data_dir: Path) -> str:
    """A manifest path as an absolute path (relative ones are relative to DATA)."""
    return str(data_dir.resolve() / path) if path and not Path(path).is_absolute() else path


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def read_progress(out: Path) -> tuple[dict | None, dict[str, dict]]:
    """The parameters and per-sample outcomes of an earlier run (torn last line ignored)."""
    path = out / PROGRESS
    if not path.is_file():
        return None, {}
    params, outcomes = None, {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "parameters" in record:
            params = record["parameters"]
        elif "sample_id" in record:
            outcomes[record["sample_id"]] = record
    return params, outcomes


def earlier_parameters(out: Path, keys: Iterable[str]) -> dict | None:
    """The output-defining parameters of the run that wrote `out` (prepare.json, or a killed run's log)."""
    done = out / "prepare.json"
    if done.is_file():
        try:
            info = json.loads(done.read_text())
        except json.JSONDecodeError:
            return None
        return {k: info.get(k) for k in keys}
    return read_progress(out)[0]


def open_output(out: Path, compared: dict, overwrite: bool) -> dict[str, dict]:
    """Check or reset PREP; return the outcomes an earlier identical run already finished."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; give a folder for --out")
    if overwrite:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for png in (out / "images").glob("*.png"):
            png.unlink()
    elif out.is_dir() and any(out.iterdir()):
        before = earlier_parameters(out, compared)
        if before is None:
            raise UserError(
                f"{out} is not empty and holds no earlier prepare run; use another --out or --overwrite"
            )
        if before != compared:
            raise UserError(
                f"{out} was prepared with other parameters ({_differences(before, compared)}); "
                "use --overwrite or another --out folder"
            )
    (out / "images").mkdir(parents=True, exist_ok=True)
    _, outcomes = read_progress(out)
    lines = [json.dumps({"parameters": compared})] + [json.dumps(o) for o in outcomes.values()]
    write_text("\n".join(lines) + "\n", out / PROGRESS)
    return outcomes


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
) -> PrepareResult:
    """Make PREP/ from DATA/: whole-breast or lesion crops as 16-bit PNGs, splits by woman, resumable.

    With workers > 1 the images are processed in a forkserver pool (safe after threads), so a Python script
    calling this must do so under `if __name__ == "__main__":`, as for any multiprocessing code.
    """
    if task not in TASKS:
        raise UserError(f"--task must be whole or roi, got {task!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(
            f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels (the long side of a mammogram), got {size}"
        )
    if context < 0:
        raise UserError(f"--context must be >= 0 (a fraction of the lesion box side), got {context}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    data_dir, out = Path(data_dir), Path(out)
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
        image_path=[_resolve(p, data_dir) for p in df["image_path"]],
        mask_path=[_resolve(p, data_dir) for p in df["mask_path"]],
    )

    compared = {
        "format": FORMAT,
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
    done = open_output(out, compared, overwrite)
    tasks, rejected = build_tasks(df, task, size, context, out / "images")

    def finished(item: Item) -> bool:
        return "made" in done.get(item.sample_id, {}) and (out / "images" / f"{item.sample_id}.png").is_file()

    pending = [t for t in ((t, [i for i in t.items if not finished(i)]) for t in tasks) if t[1]]
    todo = [
        ImageTask(t.image_path, t.task, t.size, t.context, t.images_dir, tuple(items)) for t, items in pending
    ]
    n_made = _process(todo, workers, out / PROGRESS, done)

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
    warnings += _tiny_sources(dataset)
    write_csv(dataset, out / "dataset.csv")
    info = {
        **compared,
        "mammo_version": mammo.__version__,
        "data_dir": str(data_dir.resolve()),
        "out": str(out.resolve()),
        "workers": workers,
        "processing": _processing_note(task),
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


def _tiny_sources(dataset: pd.DataFrame) -> list[str]:
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


def _process(todo: list[ImageTask], workers: int, progress: Path, done: dict[str, dict]) -> int:
    """Run pending tasks with a progress bar, logging each outcome as it arrives; returns images written."""
    made = 0
    with open(progress, "a") as log, tqdm(total=len(todo), unit="img", desc="prepare") as bar:
        for outcomes in run_tasks(todo, min(workers, max(1, len(todo)))):
            for o in outcomes:
                done[o["sample_id"]] = o
                made += "made" in o
                log.write(json.dumps(o) + "\n")
            log.flush()
            bar.update()
    return made


def _processing_note(task: str) -> dict:
    """How the pixels were made, for people and for predict (which must do the same)."""
    common = {
        "dtype": "uint16 PNG 0..65535 (8-bit sources x257); DICOM modality/VOI LUT, MONOCHROME1 inverted",
        "orientation": "mirrored when the breast's mass lies on the right, so the chest wall is on the left",
    }
    if task == "whole":
        return {
            **common,
            "whole": "breast = largest component of a threshold midway between background and Otsu "
            "(on a ~512-pixel subsample, opened); crop to its box, pixels outside it zeroed; resize keeping "
            "the aspect ratio (area averaging), zero-pad right and top/bottom to size x size",
        }
    return {
        **common,
        "roi": "square window of side (1 + 2 * context) x the lesion box's long side, centred on it, "
        "shifted inside the image (zero-padded only when larger than it); resized to size x size",
    }
