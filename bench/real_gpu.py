"""The GPU recipe of issue 28: full fine-tuning at 512 and 640 px, out of fold, test once, the final RUN.

`python bench/real_accuracy.py gpu --table TABLE --out RUN --device cuda` (TABLE: a labels.csv in the format of
rsna-screening-640, image paths relative to it, its `split` column):

1. ingest the whole table and prepare it once at --prep-size (640) px; every size reads that PREP, scaled on load;
2. per size, every image read once into memory on the device (`mammo.train.memory.Bank`: int16, 2.5 GB at 640 px);
3. per setting (model x size x views), the 5 folds by woman of the resolution study (`bench/real_resolution.py`:
   same folds, same inner validation of 15% of the other folds' women, for calibration only), every layer
   fine-tuned a fixed number of epochs in bf16 autocast and channels_last, augmented on the device; out-of-fold
   AUC image and breast level beside the shortcut baselines (age, metadata, geometry, fused) and paired deltas
   between settings, as the resolution study reports them (`mammo.evaluate.cv.oof_metrics`, `paired`);
   `views=breast` is the two-view setting trained end to end (one CC + one MLO per breast, their logits averaged);
4. the setting with the highest out-of-fold AUC (--choose-by image or breast level) trained once on train+val and
   scored once on the test split beside the baselines; that network is written to RUN, an ordinary run.

Every phase prints its images/s; training also the share of time inside the step (host time preparing batches
vs time in forward/backward/update, synchronised), and the GPU's own utilisation when NVML is there. Each fold's
held-out scores are kept (WORK/cv-<setting>/fold-k/pred.csv), so a rerun resumes. JSON: --json, by default
bench/results/gpu_accuracy.json on CUDA and RUN-work/gpu_accuracy.json on the CPU (never mixed up with GPU
numbers). Imports neither pydicom nor MONAI when the table holds PNG/JPEG images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT_JSON = HERE / "results" / "gpu_accuracy.json"
DATASET = "rsna-screening-640"
PREP_SIZE = 640
SIZES = (512, 640)
MODELS = ("efficientnet-lite0",)
VIEWS = ("image", "breast")
# Fixed before any GPU result was seen: efficientnet-lite0's fine-tuning defaults (AdamW 3e-4, weight decay 1e-2,
# class-balanced sampling, warm-up + cosine), 10 epochs, the last kept; bf16 autocast on CUDA.
RECIPE: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "lr": 3e-4,
    "warmup_epochs": 0.5,
    "augment": "mammo",
    "amp": True,
}


def log(msg: str) -> None:
    """One progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def setting_name(model: str, size: int, views: str) -> str:
    """'lite0-640-image'."""
    return f"{model.replace('efficientnet-', '')}-{size}-{views}"


def config(model: str, size: int, recipe: dict[str, Any], device: str, seed: int) -> Any:
    """The TrainConfig of one setting (the model's train defaults under the recipe)."""
    from mammo.train.config import resolve_config

    return resolve_config([], {**recipe, "model": model, "size": size, "device": device, "seed": seed})


def machine(block: Any, device: Any) -> dict[str, Any]:
    """The shared machine block (`bench/machine.py`) plus the training device, and the GPU's name and memory."""
    import torch

    out = {**block.finish(), "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1))
    return out


def save(results: dict[str, Any], path: Path) -> None:
    """The JSON, strict (NaN -> null), written atomically."""
    from mammo.io.atomic import json_safe, write_json

    write_json(json_safe(results), path)


def prepare_table(table: Path, work: Path, prep_size: int, workers: int) -> Path:
    """ingest the whole table (absolute image paths) and prepare it at `prep_size`; skipped when done."""
    from mammo.data.table import ingest_table
    from mammo.prep.run import prepare

    data, prep = work / "data", work / f"prep{prep_size}"
    if not (data / "manifest.csv").is_file():
        df = pd.read_csv(table, dtype=str, keep_default_na=False)
        if not {"image", "split"} <= set(df.columns):
            sys.exit(f"{table}: needs the columns image and split (train/val/test) of {DATASET}'s labels.csv")
        df["image"] = [str((table.resolve().parent / p).resolve()) for p in df["image"]]
        work.mkdir(parents=True, exist_ok=True)
        df.to_csv(work / "table.csv", index=False)
        log(f"ingest {table}")
        ingest_table(work / "table.csv", data)
    if not (prep / "dataset.csv").is_file():
        log(f"prepare at {prep_size} px")
        prepare(data, prep, task="whole", size=prep_size, workers=workers)
    return prep


def cv_setting(
    bank: Any,
    pool: np.ndarray,
    fold: np.ndarray,
    prep: Path,
    work: Path,
    model: str,
    views: str,
    args: argparse.Namespace,
    timings: dict[str, Any],
) -> pd.DataFrame:
    """5-fold CV of one setting on the bank: the pooled out-of-fold rows with `score` (calibrated logit)."""
    from real_resolution import FOLDS, SEED, VAL_FRACTION

    from mammo.evaluate.cv import fold_dataset
    from mammo.models.registry import get_model_info
    from mammo.train.memory import bank_logits, fit

    spec = get_model_info(model)
    name = setting_name(model, bank.size, views)
    rows = bank.rows.iloc[pool].reset_index(drop=True)
    scores = np.full(len(rows), np.nan)
    for k in range(args.folds or FOLDS):
        pred = work / f"cv-{name}" / f"fold-{k}" / "pred.csv"
        if not pred.is_file():
            df = fold_dataset(rows, fold, k, prep, VAL_FRACTION, SEED)
            cfg = config(model, bank.size, args.recipe, args.device, SEED)
            t0 = time.time()
            fitted = fit(
                cfg,
                bank,
                pool[(df["split"] == "train").to_numpy()],
                pool[(df["split"] == "val").to_numpy()],
                views,
                say=log,
            )
            held = pool[(df["split"] == "test").to_numpy()]
            logits = bank_logits(fitted.model, bank, held, spec.mean, spec.std, fitted.timer, "score")
            pred.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {"sample_id": bank.rows["sample_id"].to_numpy()[held], "score": logits / fitted.temperature}
            ).to_csv(pred, index=False)
            timings.setdefault(name, []).append(fitted.timer.summary())
            log(
                f"{name} fold {k + 1}: inner val AUC {fitted.history[-1]['val_auc']:.3f}, {time.time() - t0:.0f} s"
            )
        p = pd.read_csv(pred, dtype={"sample_id": str}).set_index("sample_id")["score"]
        held_rows = (fold == k).nonzero()[0]
        scores[held_rows] = p.loc[rows["sample_id"].to_numpy()[held_rows]].to_numpy(float)
    oof = rows.assign(fold=fold).drop(columns=["image", "split"])
    oof["score"] = scores
    oof.to_csv(work / f"cv-{name}" / "oof.csv", index=False)
    return oof


def merged_timings(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase over the folds: images, seconds, images/s, and the training step fraction (pooled)."""
    out: dict[str, Any] = {}
    for phase in ("train", "validate", "score"):
        parts = [b[phase] for b in blocks if phase in b]
        if not parts:
            continue
        images, seconds = sum(p["images"] for p in parts), sum(p["seconds"] for p in parts)
        out[phase] = {
            "images": images,
            "seconds": round(seconds, 2),
            "images_per_s": round(images / seconds, 2) if seconds else None,
        }
        if phase == "train":
            out[phase]["step_fraction"] = round(
                float(np.average([p["step_fraction"] for p in parts], weights=[p["seconds"] for p in parts])),
                4,
            )
    gpu = [b["gpu_utilisation_percent_mean"] for b in blocks if "gpu_utilisation_percent_mean" in b]
    if gpu:
        out["gpu_utilisation_percent_mean"] = round(float(np.mean(gpu)), 1)
    return out


def test_phase(
    bank: Any,
    pool: np.ndarray,
    test: np.ndarray,
    prep: Path,
    work: Path,
    name: str,
    setting: dict[str, Any],
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    """The chosen setting trained once on train+val, scored once on test beside the baselines; RUN written."""
    from real_resolution import SEED, VAL_FRACTION

    from mammo.evaluate.cv import fold_dataset
    from mammo.models.registry import get_model_info
    from mammo.stats.baselines import breast_block, score_block, split_baselines
    from mammo.stats.paired import paired_delta_auc
    from mammo.train.memory import bank_logits, fit, write_run

    rows = bank.rows.iloc[pool].reset_index(drop=True)
    df = fold_dataset(rows, np.ones(len(rows), int), 0, prep, VAL_FRACTION, SEED)  # no held-out fold
    cfg = replace(
        config(setting["model"], bank.size, args.recipe, args.device, SEED), prep=str(prep.resolve())
    )
    t0 = time.time()
    fitted = fit(
        cfg,
        bank,
        pool[(df["split"] == "train").to_numpy()],
        pool[(df["split"] == "val").to_numpy()],
        setting["views"],
        say=log,
    )
    info = get_model_info(setting["model"])
    logits = bank_logits(fitted.model, bank, test, info.mean, info.std, fitted.timer, "score")
    if args.out.exists():
        shutil.rmtree(args.out)
    write_run(fitted, prep, args.out)
    trows = bank.rows.iloc[test].reset_index(drop=True).assign(label=lambda d: d["label"].astype(int))
    trows["score"] = logits / fitted.temperature
    oof = pd.read_csv(work / f"cv-{name}" / "oof.csv", dtype={"sample_id": str, "patient_id": str})
    blocks, scores = split_baselines(
        rows.assign(label=rows["label"].astype(int)), trows, fuse_rows=oof, image_score="score"
    )
    labels, groups = trows["label"].to_numpy(int), trows["patient_id"].to_numpy()
    pairs = {}
    for a in ("metadata", "age", "geometry"):
        if a in scores:
            pairs[f"image - {a}"] = paired_delta_auc(
                labels, np.asarray(scores[a], float), trows["score"].to_numpy(float), groups
            )
    results["test"] = {
        "setting": name,
        "model": f"the {name} setting trained once on train+val (inner val carved by woman for calibration)",
        **score_block(labels, trows["score"].to_numpy(float), groups),
        "n_women": int(trows["patient_id"].nunique()),
        "baselines": blocks,
        "paired": pairs,
        "breast_level": breast_block(trows.assign(**scores), scores),
        "timings": fitted.timer.summary(),
        "seconds": round(time.time() - t0, 1),
        "run": str(args.out),
    }
    log(f"test: {name} AUC {results['test']['auc']:.3f}; RUN written to {args.out}")


def gpu(argv: list[str]) -> None:
    """`gpu --table TABLE --out RUN --device cuda`: the whole GPU recipe (see the module docstring)."""
    import torch
    from machine import Machine
    from real_resolution import FOLDS, SEED, paired

    from mammo.errors import UserError
    from mammo.evaluate.cv import POOL_SPLITS, assign_folds, oof_metrics
    from mammo.prep.dataset import read_dataset_csv
    from mammo.train.memory import Bank, device_for

    ap = argparse.ArgumentParser(prog="real_accuracy.py gpu", description=__doc__)
    ap.add_argument("--table", type=Path, required=True, help=f"labels.csv in the format of {DATASET}")
    ap.add_argument("--out", type=Path, required=True, help="RUN folder the final model is written to")
    ap.add_argument("--work", type=Path, help="DATA, PREP and per-fold scores (default: RUN-work)")
    ap.add_argument("--device", default="cuda", help="cuda (default), cpu or auto")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument(
        "--models", nargs="+", default=list(MODELS), help="e.g. efficientnet-lite0 efficientnet-lite2"
    )
    ap.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS))
    ap.add_argument("--prep-size", type=int, default=PREP_SIZE)
    ap.add_argument("--folds", type=int, default=FOLDS)
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    ap.add_argument(
        "--choose-by", choices=VIEWS, default="image", help="out-of-fold AUC level the choice uses"
    )
    ap.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="threads/processes reading"
    )
    ap.add_argument("--json", type=Path, help="results (default: bench/results/gpu_accuracy.json on CUDA)")
    a = ap.parse_args(argv)
    if not a.table.is_file():
        raise UserError(f"--table {a.table}: not found; pass a labels.csv in the format of {DATASET}")
    started, block = time.time(), Machine.start()
    device = device_for(a.device)
    a.device = str(device)
    a.recipe = {**RECIPE, "epochs": a.epochs, "batch_size": a.batch_size}
    work = a.work or a.out.with_name(a.out.name + "-work")
    path = a.json or (OUT_JSON if device.type == "cuda" else work / "gpu_accuracy.json")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results: dict[str, Any] = {
        "dataset": DATASET,
        "command": "python bench/real_accuracy.py gpu " + " ".join(argv),
        "recipe": a.recipe,
        "folds": a.folds,
        "choose_by": a.choose_by,
        "machine": machine(block, device),
        "cv": {},
        "timings": {},
    }
    t0 = time.time()
    prep = prepare_table(a.table, work, a.prep_size, a.workers)
    results["phase_seconds"] = {"prepare": round(time.time() - t0, 1)}
    rows = read_dataset_csv(prep)
    rows["label"] = rows["label"].astype(int)
    pool = np.flatnonzero(rows["split"].isin(POOL_SPLITS).to_numpy())
    test = np.flatnonzero((rows["split"] == "test").to_numpy())
    fold = assign_folds(rows.iloc[pool].reset_index(drop=True), a.folds, SEED)
    oofs: dict[str, pd.DataFrame] = {}
    banks: dict[int, Any] = {}
    for size in a.sizes:
        t0 = time.time()
        banks[size] = bank = Bank.load(prep, rows, size, device=device, workers=a.workers)
        results["timings"][f"load-{size}"] = {
            "images": len(rows),
            "seconds": round(bank.load_seconds, 2),
            "images_per_s": round(len(rows) / bank.load_seconds, 1),
            "bytes": int(bank.pixels.numel() * 2),
        }
        log(
            f"{size} px: {len(rows)} images in memory ({bank.pixels.numel() * 2 / 2**30:.2f} GiB) in {bank.load_seconds:.1f} s"
        )
        for model in a.models:
            for views in a.views:
                name = setting_name(model, size, views)
                fold_timings: dict[str, Any] = {}
                t1 = time.time()
                oof = cv_setting(bank, pool, fold, prep, work, model, views, a, fold_timings)
                oofs[name] = oof
                results["cv"][name] = {
                    "model": model,
                    "size": size,
                    "views": views,
                    "seconds_this_run": round(time.time() - t1, 1),
                    "timings": merged_timings(fold_timings.get(name, [])),
                    **oof_metrics(oof, a.folds),
                }
                m = results["cv"][name]
                log(
                    f"{name}: out-of-fold AUC {m['auc']:.3f}, breast level "
                    f"{(m.get('breast_level') or {}).get('auc', float('nan')):.3f}; "
                    f"age {m['baselines'].get('age', {}).get('auc', float('nan')):.3f}"
                )
                results["machine"] = machine(block, device)
                save(results, path)
        if size != max(a.sizes):
            del banks[size]
            if device.type == "cuda":
                torch.cuda.empty_cache()
    names = list(results["cv"])
    results["paired_settings"] = {
        f"{b} - {x}": p for i, x in enumerate(names) for b in names[i + 1 :] if (p := paired(oofs, x, b))
    }

    def level(n: str) -> float:
        m = results["cv"][n]
        return (m.get("breast_level") or {}).get("auc", m["auc"]) if a.choose_by == "breast" else m["auc"]

    chosen = max(names, key=level)
    results["chosen"] = chosen
    t0 = time.time()
    setting = results["cv"][chosen]
    bank = banks.get(setting["size"]) or Bank.load(
        prep, rows, setting["size"], device=device, workers=a.workers
    )
    test_phase(bank, pool, test, prep, work, chosen, setting, a, results)
    results["phase_seconds"]["test_and_final"] = round(time.time() - t0, 1)
    results["wall_seconds"] = round(time.time() - started, 1)
    results["machine"] = machine(block, device)
    save(results, path)
    log(f"done in {results['wall_seconds']:.0f} s; results {path}; RUN {a.out}")
