"""The resolution study of issue 19: one CPU-sized recipe at 256, 384 and 640 px on rsna-screening-640, paired.

Recipe (`RECIPE`, cached trunk): efficientnet-lite0 with its ImageNet weights frozen up to and including the head
conv (`freeze` 9), the trunk's output computed once per image (`mammo.train.cache`, onnxruntime); the head's batch
norm kept pretrained, so with a pooling without weights (avg, max, top-k) only the classifier trains, on pooled
vectors, a fixed number of epochs; the result is an ordinary RUN. Extras, measured where they are cheap (256 px)
and never chosen: attention pooling, and the head's batch norm trained too. Every size reads the same 640 px
PREP (scaled down on load), so sizes differ in nothing else.

1. `cv`: 5-fold CV by woman over train+val (the folds of `mammo cv --folds 5 --seed 0`, an inner val of 15% of the
   women of the other folds for calibration only) for each size and pooling; out-of-fold AUC with its 95% CI by
   woman, image and breast level, beside age alone, metadata only (machine, site, view, implant, density,
   detected polarity, ...), geometry only and fused (image + age + density), all out of fold; paired deltas
   between sizes and poolings on the same women.
2. `test`: the setting with the highest out-of-fold AUC trained once on train+val (inner val carved by woman for
   calibration) and scored once on the test split, metadata/geometry fitted on train+val, fused fitted out of fold.

Resumes per fold (WORK/cv-<size>-<pooling>/fold-k/pred.csv) and per cached image; progress to stdout; JSON to
bench/results/resolution.json after every setting.
Usage: python bench/real_resolution.py --prep PREP640 [--work DIR] [--sizes 640 256 384] [--poolings avg attention]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import Machine

MACHINE = Machine.start()  # the load and timers from the script's start; save() writes the block
HERE = Path(__file__).resolve().parent
OUT_JSON = HERE / "results" / "resolution.json"
DATASET = "rsna-screening-640"
FOLDS, SEED, VAL_FRACTION = 5, 0, 0.15
PREP_SIZE = 640  # every size is scaled on load from this prepared side

# Fixed before any result was seen: the trained part is small (batch norm, pooling, classifier: ~5k weights), so a
# higher rate than fine-tuning and a short cosine schedule; no early stopping (the last epoch is the model).
# Otherwise efficientnet-lite0's train defaults (AdamW, weight decay 1e-2, class-balanced sampling).
RECIPE: dict[str, Any] = {
    "model": "efficientnet-lite0",
    "freeze": 9,
    "epochs": 12,
    "batch_size": 32,
    "lr": 1e-3,
    "warmup_epochs": 0.5,
    "device": "cpu",
}
SIZES = (640, 256, 384)
# Extras (size, pooling, head norm trained), run after the test phase when time is left; never chosen. The last
# two train the head norm at the chosen 384 px and at 640 px.
EXTRAS = (
    (256, "attention", False),
    (256, "avg", True),
    (256, "topk", True),
    (384, "avg", True),
    (640, "avg", True),
)
FINAL_DEFAULT = (640, "topk", False)  # what `real_accuracy.py final` trains before the study has chosen
POOLINGS = ("avg", "topk", "max")


# How the cut was chosen (measured here at 20:46 on 2026-12-06, 2 torch threads, random 640 px inputs, a busy
# machine at load ~10): training throughput of the part after the cut, forward + backward + AdamW, batch 32.
CUT_MEASUREMENTS = {
    "trunk forward to the end of stage 6, onnxruntime, batch 1": "0.47 s/image (torch eager: 1.2-3.2)",
    "train stages 6-7 + head on a stage-5 cache": "0.8 images/s (a 5-fold CV of 12 epochs: ~40 h)",
    "train stage 7 + head on a stage-6 cache": "2.9 images/s (~12 h)",
    "train head conv + pooling + classifier on a stage-7 cache": "10.6 images/s (~3.3 h)",
    "train head batch norm + pooling + classifier on the head-conv cache (chosen)": "minutes per 5-fold CV",
}
NOT_MEASURED = [
    "cuts below the head conv (training the head conv or stage 7): 3-12 hours per 5-fold CV at 640 px here "
    "(CUT_MEASUREMENTS), more than this session had",
    "512 px: 384 px was run instead, as it costs 36% of the 640 px cache instead of 64%",
    "the left-right mirror as augmentation (`train_cached(mirror=True)`): it doubles the trunk cache",
    "an epoch count chosen on data: 12 was fixed beforehand; the inner-validation AUC per epoch is recorded per "
    "setting (inner_val_auc_mean_by_epoch)",
    "full fine-tuning at 512-640 px on a GPU (part 5 of the issue): no GPU was lent to this session",
    "attention pooling at 384 and 640 px: it trains on the cached maps, not on pooled vectors (minutes per fold "
    "at 640 px here), left out for time; it is measured at 256 px as an extra",
]


def log(msg: str) -> None:
    """One progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def setting_name(size: int, pooling: str, head_norm: bool = False) -> str:
    """'640-avg', or '256-avg-bn' when the head's batch norm trains too."""
    return f"{size}-{pooling}{'-bn' if head_norm else ''}"


def recipe_for(size: int, pooling: str, seed: int = SEED) -> dict[str, Any]:
    """The train overrides of one setting."""
    return {**RECIPE, "size": size, "model_args": {"pooling": pooling}, "seed": seed}


def command(size: int, pooling: str, head_norm: bool = False) -> str:
    """The setting as the library call that trains it (`mammo train --trunk-cache` trains the head norm too)."""
    flags = ", ".join(
        f"{k}={v!r}" for k, v in recipe_for(size, pooling).items() if k not in ("device", "seed")
    )
    return f"mammo.train.cached.train_cached(PREP, RUN, CACHE, dict({flags}), head_norm={head_norm})"


def save(results: dict[str, Any]) -> None:
    """Write the JSON (strict: NaN -> null) atomically, to --json (default bench/results/resolution.json)."""
    from mammo.io.atomic import json_safe, write_json

    results["machine"] = MACHINE.finish()
    write_json(json_safe({k: v for k, v in results.items() if k != "_path"}), results.get("_path", OUT_JSON))


def pool_rows(prep: Path) -> pd.DataFrame:
    """PREP's train+val rows with integer labels (the CV pool)."""
    from mammo.evaluate.cv import POOL_SPLITS
    from mammo.prep.dataset import read_dataset_csv

    rows = read_dataset_csv(prep)
    rows = rows[rows["split"].isin(POOL_SPLITS)].reset_index(drop=True)
    rows["label"] = rows["label"].astype(int)
    return rows


def build_cache(prep: Path, rows: pd.DataFrame, size: int, cache: Path, results: dict[str, Any]) -> None:
    """Trunk outputs of `rows` at `size` (what is missing), timed per image computed."""
    from mammo.models.registry import create_model, get_model_info
    from mammo.models.split import make_cut
    from mammo.train.cache import TrunkCache

    info = get_model_info(RECIPE["model"])
    net = create_model(RECIPE["model"], pretrained=True).eval()
    cut = make_cut(net, info.feature_layers, RECIPE["freeze"], RECIPE["model"])
    store = TrunkCache(cache, net, cut, RECIPE["model"], size, info.mean, info.std)
    t0 = time.time()
    n = store.build([prep / p for p in rows["image"]], log=log)
    timing = results.setdefault("cache_seconds_per_image", {})
    if n:
        timing[str(size)] = round((time.time() - t0) / n, 3)
        log(f"cache {size}px: {n} images in {time.time() - t0:.0f} s")
    elif str(size) not in timing:  # built by an earlier invocation: the files' own timestamps say how fast
        timing[str(size)] = cache_pace(store.dir)


def cache_pace(folder: Path) -> float | None:
    """Seconds per trunk output from the write times of a cache's files (gaps over a minute, between builds,
    left out)."""
    times = np.sort([f.stat().st_mtime for f in folder.glob("*.npy") if "-" not in f.stem])
    gaps = np.diff(times)
    gaps = gaps[gaps < 60]
    return round(float(gaps.mean()), 3) if len(gaps) else None


def cv_setting(
    prep: Path, work: Path, cache: Path, size: int, pooling: str, head_norm: bool = False
) -> tuple[pd.DataFrame, dict]:
    """5-fold CV of one setting on the cache: pooled out-of-fold rows with `score`, and per-fold records."""
    from mammo.evaluate.cv import assign_folds, fold_dataset, write_fold_prep
    from mammo.train.cached import score_cached, train_cached

    rows = pool_rows(prep)
    fold = assign_folds(rows, FOLDS, SEED)
    name = setting_name(size, pooling, head_norm)
    out = work / f"cv-{name}"
    scores = pd.Series(np.nan, index=rows["sample_id"])
    record: dict[str, Any] = {"train_seconds": 0.0, "inner_val_auc_by_epoch": []}
    for k in range(FOLDS):
        fold_dir = out / f"fold-{k}"
        pred = fold_dir / "pred.csv"
        if not pred.is_file():
            df = fold_dataset(rows, fold, k, prep, VAL_FRACTION, SEED)
            write_fold_prep(prep, fold_dir / "prep", df)
            shutil.rmtree(
                fold_dir / "run", ignore_errors=True
            )  # an interrupted fold trains again from the start
            t0 = time.time()
            res = train_cached(
                fold_dir / "prep",
                fold_dir / "run",
                cache,
                recipe_for(size, pooling),
                say=log,
                head_norm=head_norm,
            )
            held = df[df["split"] == "test"].reset_index(drop=True)
            s = score_cached(fold_dir / "run", fold_dir / "prep", held, cache, say=log)
            pd.DataFrame({"sample_id": held["sample_id"], "score": s}).to_csv(pred, index=False)
            log(
                f"{name} fold {k + 1}/{FOLDS}: inner val AUC {res.best_val_auc:.3f}, {time.time() - t0:.0f} s"
            )
        else:
            log(f"{name} fold {k + 1}/{FOLDS}: done earlier, kept")
        p = pd.read_csv(pred, dtype={"sample_id": str})
        scores.loc[p["sample_id"]] = p["score"].to_numpy(float)
        history = pd.read_csv(fold_dir / "run" / "metrics.csv")
        record["train_seconds"] += float(history["seconds"].sum())
        record["inner_val_auc_by_epoch"].append(history["val_auc"].round(4).tolist())
    curves = np.array(record["inner_val_auc_by_epoch"], dtype=float)
    record["inner_val_auc_mean_by_epoch"] = np.round(np.nanmean(curves, axis=0), 4).tolist()
    oof = rows.assign(fold=fold).drop(columns=["image", "split"])
    oof["score"] = scores.loc[oof["sample_id"]].to_numpy(float)
    oof.to_csv(out / "oof.csv", index=False)
    return oof, record


def paired(oofs: dict[str, pd.DataFrame], a: str, b: str) -> dict[str, Any] | None:
    """AUC(b) - AUC(a) on the same out-of-fold rows, image and breast level, paired by woman."""
    from mammo.stats.baselines import breast_level
    from mammo.stats.paired import paired_delta_auc

    if a not in oofs or b not in oofs:
        return None
    x = oofs[a].assign(
        score_b=oofs[b].set_index("sample_id").loc[oofs[a]["sample_id"], "score"].to_numpy(float)
    )
    labels, groups = x["label"].to_numpy(int), x["patient_id"].to_numpy()
    out: dict[str, Any] = {
        "a": a,
        "b": b,
        **paired_delta_auc(labels, x["score"].to_numpy(float), x["score_b"].to_numpy(float), groups),
    }
    breasts = breast_level(x, ["score", "score_b"])
    if breasts is not None:
        out["breast_level"] = paired_delta_auc(
            breasts["label"].to_numpy(int),
            breasts["score"].to_numpy(float),
            breasts["score_b"].to_numpy(float),
            breasts["patient_id"].to_numpy(),
        )
    return out


def run_setting(
    prep: Path,
    work: Path,
    size: int,
    pooling: str,
    head_norm: bool,
    results: dict[str, Any],
    extra: bool = False,
) -> None:
    """One setting out of fold with its baselines; the paired deltas and the JSON updated after it."""
    from mammo.evaluate.cv import oof_metrics

    settings = results.setdefault("cv", {})
    name = setting_name(size, pooling, head_norm)
    oof, record = cv_setting(prep, work, work / "cache", size, pooling, head_norm)
    settings[name] = {
        "size": size,
        "pooling": pooling,
        "head_norm": "trained" if head_norm else "pretrained",
        "extra": extra,
        "command": command(size, pooling, head_norm),
        **record,
        **oof_metrics(oof, FOLDS),
    }
    m = settings[name]
    log(
        f"{name}: out-of-fold AUC {m['auc']:.3f} ({m['auc_ci_low']:.3f}-{m['auc_ci_high']:.3f}); "
        f"age {m['baselines'].get('age', {}).get('auc', float('nan')):.3f}, "
        f"fused {m['baselines'].get('fused', {}).get('auc', float('nan')):.3f}"
    )
    results["paired_settings"] = settings_pairs(work, settings)
    if not extra and "test" not in results:  # the choice is frozen once test has been scored
        main = [n for n in settings if not settings[n].get("extra")]
        results["chosen"] = max(main, key=lambda n: settings[n]["auc"])
    results["targets"] = targets(results)
    save(results)


def cv_phase(prep: Path, work: Path, sizes: list[int], poolings: list[str], results: dict[str, Any]) -> None:
    """Every (size, pooling) setting out of fold, the baselines beside each, the paired deltas between them."""
    rows = pool_rows(prep)
    for size in sizes:
        build_cache(prep, rows, size, work / "cache", results)
        save(results)
        for pooling in poolings:
            run_setting(prep, work, size, pooling, False, results)


def extras_phase(prep: Path, work: Path, results: dict[str, Any], names: list[str] | None = None) -> None:
    """The extra settings (attention pooling, trained head norm), or those of them named: reported, never chosen."""
    rows = pool_rows(prep)
    for size, pooling, head_norm in EXTRAS:
        if names is not None and setting_name(size, pooling, head_norm) not in names:
            continue
        build_cache(prep, rows, size, work / "cache", results)
        run_setting(prep, work, size, pooling, head_norm, results, extra=True)


def settings_pairs(work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Paired deltas between the measured settings: sizes at one pooling, poolings and extras at one size."""
    oofs = {
        n: pd.read_csv(work / f"cv-{n}" / "oof.csv", dtype={"sample_id": str, "patient_id": str})
        for n in settings
    }
    main = {n: s for n, s in settings.items() if not s.get("extra")}
    sizes = sorted({s["size"] for s in main.values()})
    poolings = list(dict.fromkeys(s["pooling"] for s in main.values()))
    out = {}
    for pooling in poolings:
        for i, small in enumerate(sizes):
            for big in sizes[i + 1 :]:
                p = paired(oofs, f"{small}-{pooling}", f"{big}-{pooling}")
                if p:
                    out[f"{big} px - {small} px ({pooling})"] = p
    for size in sizes:
        for pooling in poolings[1:]:
            p = paired(oofs, f"{size}-{poolings[0]}", f"{size}-{pooling}")
            if p:
                out[f"{pooling} - {poolings[0]} pooling ({size} px)"] = p
    for name, s in settings.items():
        if s.get("extra"):
            base = (
                f"{s['size']}-{s['pooling']}" if s["head_norm"] == "trained" else f"{s['size']}-{poolings[0]}"
            )
            p = paired(oofs, base, name)
            if p:
                out[f"{name} - {base}"] = p
    return out


def test_phase(prep: Path, work: Path, results: dict[str, Any]) -> None:
    """The chosen setting trained once on train+val, scored once on test, beside the baselines on the same rows."""
    from mammo.evaluate.cv import POOL_SPLITS, fold_dataset, write_fold_prep
    from mammo.prep.dataset import read_dataset_csv
    from mammo.stats.baselines import breast_level, score_block, split_baselines
    from mammo.stats.paired import paired_delta_auc
    from mammo.train.cached import score_cached, train_cached

    name = results["chosen"]
    size, pooling = results["cv"][name]["size"], results["cv"][name]["pooling"]
    head_norm = results["cv"][name].get("head_norm") == "trained"
    cache, final = work / "cache", work / f"final-{name}"
    df = read_dataset_csv(prep)
    df["label"] = df["label"].astype(int)
    test = df[df["split"] == "test"].reset_index(drop=True)
    build_cache(prep, test, size, cache, results)
    pred = final / "test_pred.csv"
    if not pred.is_file():
        held = (~df["split"].isin(POOL_SPLITS)).to_numpy().astype(int)
        fdf = fold_dataset(
            df, 1 - held, 0, prep, VAL_FRACTION, SEED
        )  # fold 0 = the test split, never fitted on
        write_fold_prep(prep, final / "prep", fdf)
        shutil.rmtree(final / "run", ignore_errors=True)
        t0 = time.time()
        train_cached(
            final / "prep", final / "run", cache, recipe_for(size, pooling), say=log, head_norm=head_norm
        )
        results["final_train_seconds"] = round(time.time() - t0)
        s = score_cached(final / "run", prep, test, cache, say=log)
        pd.DataFrame({"sample_id": test["sample_id"], "score": s}).to_csv(pred, index=False)
    p = pd.read_csv(pred, dtype={"sample_id": str}).set_index("sample_id")
    test["score"] = p.loc[test["sample_id"], "score"].to_numpy(float)
    oof = pd.read_csv(work / f"cv-{name}" / "oof.csv", dtype={"sample_id": str, "patient_id": str})
    pool = df[df["split"].isin(POOL_SPLITS)]
    blocks, scores = split_baselines(pool, test, fuse_rows=oof, image_score="score")
    labels, groups = test["label"].to_numpy(int), test["patient_id"].to_numpy()
    pairs = {}
    for a, b in (
        ("metadata", "image"),
        ("age", "image"),
        ("geometry", "image"),
        ("metadata", "fused"),
        ("age", "fused"),
        ("image", "fused"),
    ):
        sa = test["score"] if a == "image" else scores.get(a)
        sb = test["score"] if b == "image" else scores.get(b)
        if sa is not None and sb is not None:
            pairs[f"{b} - {a}"] = paired_delta_auc(
                labels, np.asarray(sa, float), np.asarray(sb, float), groups
            )
    breasts = breast_level(test.assign(**scores), ["score", *scores])
    bl = None
    if breasts is not None:
        bl_labels, bl_groups = breasts["label"].to_numpy(int), breasts["patient_id"]
        bl = {
            **score_block(bl_labels, breasts["score"].to_numpy(float), bl_groups),
            "baselines": {n: score_block(bl_labels, breasts[n].to_numpy(float), bl_groups) for n in scores},
        }
    results["test"] = {
        "setting": name,
        "model": f"the {name} setting trained once on train+val (inner val carved by woman for calibration)",
        **score_block(labels, test["score"].to_numpy(float), groups),
        "n_women": int(test["patient_id"].nunique()),
        "baselines": blocks,
        "paired": pairs,
        "breast_level": bl,
    }
    log(f"test: {name} AUC {results['test']['auc']:.3f}")


def targets(results: dict[str, Any]) -> dict[str, str]:
    """Each target of issue 19 with the number reached and whether it held."""
    out: dict[str, str] = {}
    cv = (results.get("cv") or {}).get(results.get("chosen") or "")
    if not cv:
        return out
    pairs = cv.get("paired") or {}
    b = cv.get("baselines") or {}

    def held(ok: bool) -> str:
        return "held" if ok else "not held"

    ia = pairs.get("image - age", {})
    out["CV image-only AUC >= 0.70 and above age alone (paired CI excludes 0)"] = (
        f"{cv['auc']:.3f} vs age {b.get('age', {}).get('auc', float('nan')):.3f}, delta {ia.get('delta', float('nan')):+.3f} "
        f"({ia.get('ci_low', float('nan')):+.3f} to {ia.get('ci_high', float('nan')):+.3f}): "
        + held(cv["auc"] >= 0.70 and ia.get("ci_low", -1) > 0)
    )
    fm = pairs.get("fused - metadata", {})
    fused = b.get("fused", {}).get("auc", float("nan"))
    out["CV fused >= 0.75 and above metadata-only (paired CI excludes 0)"] = (
        f"{fused:.3f} vs metadata {b.get('metadata', {}).get('auc', float('nan')):.3f}, delta "
        f"{fm.get('delta', float('nan')):+.3f} ({fm.get('ci_low', float('nan')):+.3f} to {fm.get('ci_high', float('nan')):+.3f}): "
        + held(fused >= 0.75 and fm.get("ci_low", -1) > 0)
    )
    pooling = cv["pooling"]
    sz = (results.get("paired_settings") or {}).get(f"640 px - 256 px ({pooling})")
    out["640 px above 256 px, same recipe (paired CI excludes 0)"] = (
        "not measured"
        if not sz
        else f"delta {sz['delta']:+.3f} ({sz['ci_low']:+.3f} to {sz['ci_high']:+.3f}): "
        + held(sz["ci_low"] > 0)
    )
    return out


def main() -> None:
    """Run the phases in order, saving the JSON after each setting."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prep", type=Path, default=Path("/work/data/rsna640-prep"))
    ap.add_argument("--work", type=Path, default=Path("/work/data/resolution"))
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--poolings", nargs="+", default=list(POOLINGS))
    ap.add_argument(
        "--extras", nargs="+", help="run only these extras (e.g. 384-avg-bn; default: all of EXTRAS)"
    )
    ap.add_argument(
        "--json", type=Path, default=OUT_JSON, help="results file (read first: the run resumes it)"
    )
    ap.add_argument(
        "--phases", nargs="+", choices=("cv", "test", "extras", "timings"), default=["cv", "test", "extras"]
    )
    a = ap.parse_args()
    if not (a.prep / "dataset.csv").is_file():
        sys.exit(f"{a.prep}: no dataset.csv; prepare rsna-screening-640 at 640 px first")
    results = json.loads(a.json.read_text()) if a.json.is_file() else {}
    results["_path"] = a.json
    made = json.loads((a.prep / "prepare.json").read_text()) if (a.prep / "prepare.json").is_file() else {}
    results["prep"] = {k: made.get(k) for k in ("format", "task", "size", "manifest_sha256", "processing")}
    results.update(
        dataset=DATASET,
        prep_size=PREP_SIZE,
        recipe={k: v for k, v in RECIPE.items() if k != "device"},
        folds=FOLDS,
        cut_measurements=CUT_MEASUREMENTS,
        not_measured=NOT_MEASURED,
        prepare_command="mammo prepare DATA --out PREP --task whole --size 640",
    )
    for phase in a.phases:
        t0 = time.time()
        log(f"phase {phase}")
        if phase == "timings":  # cache timings only, for caches an earlier invocation built
            for size in a.sizes:
                build_cache(a.prep, pool_rows(a.prep), size, a.work / "cache", results)
        elif phase == "cv":
            cv_phase(a.prep, a.work, a.sizes, a.poolings, results)
        elif phase == "extras":
            extras_phase(a.prep, a.work, results, a.extras)
        else:
            test_phase(a.prep, a.work, results)
        results.setdefault("phase_seconds", {})[phase] = round(time.time() - t0)
        results["targets"] = targets(results)
        save(results)
        log(f"phase {phase} done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
