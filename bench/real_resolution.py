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
2. `stage7` (issue 28, a lever): stage 7 and the head conv trained at 384 px on a cache of stage 6's output
   (`freeze` 7), on the first `STAGE7["folds"]` folds of the same 5 (a long job: resumable per fold).
3. `levers`: the rows of issue 28 put together: tile pooling (`tiles`, run by `cv` like any pooling; see
   `mammo.models.pooling.TilePool` for how it differs from running the trunk on crops), the stage-7 row on the
   folds it finished, and the out-of-fold ensemble (mean of calibrated logits) of the `ENSEMBLE_SIZE` best
   settings; each paired against age (its `paired`) and against `BASE_SETTING` on the same women.
4. `test`: the setting with the highest out-of-fold AUC among the single settings run on all 5 folds (what one
   RUN can be) trained once on train+val (inner val carved by woman for calibration) and scored once on the
   test split, metadata/geometry fitted on train+val, fused fitted out of fold; rerun only if the choice changed.

Resumes per fold (WORK/cv-<size>-<pooling>/fold-k/pred.csv) and per cached image; progress to stdout; JSON to
bench/results/resolution.json after every setting.
Usage: python bench/real_resolution.py --prep PREP640 [--work DIR] [--sizes 384 640] [--poolings avg tiles]
       [--phases cv stage7 levers test extras] [--json OUT]
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
SIZES = (384, 640, 256)  # 384 first: the setting to beat (BASE_SETTING); then 640, which tiles need
BASE_SETTING = "384-avg"  # the chosen setting before issue 28's levers: every lever is paired against it
# Issue 28's lever: the last stage (stage 7) and the head conv trained at 384 px on a stage-6 cache, 3 of the 5
# folds. Fixed before any result: the model's fine-tuning rate (3e-4; these are pretrained weights adapted, not
# a fresh classifier), the head norm trained with the head conv; 3 epochs because that is what fitted the time
# left (measured 5.0 images/s for forward + backward + AdamW, batch 32, at load 11: ~6 min per fold-epoch).
# Issue 28's session ran it on all 5 folds (--stage7-folds 5) when the load fell.
STAGE7: dict[str, Any] = {"size": 384, "pooling": "avg", "freeze": 7, "epochs": 3, "lr": 3e-4, "folds": 3}
ENSEMBLE_SIZE = 3  # the ensemble row: mean calibrated logit of the best this many full-CV single settings
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
POOLINGS = ("avg", "topk", "max", "tiles")


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
    "real tiles (the trunk re-run on crops): a crop of the 640 px PREP has no more pixels per lesion than the "
    "whole image, so they would differ from pooled regions (`tiles`) only in context and padding, at 9x the "
    "trunk's cost",
    "stage 7 + head conv trained at 640 px: run at 384 px only (3 epochs, 5 folds with --stage7-folds 5; 2 to 11 "
    "images/s here depending on the load of the 7 sessions sharing 2 cores)",
    "the extras (attention pooling, the head's batch norm trained) were not repeated in issue 28's session: "
    "their rows are the earlier run's",
    "512 px: 384 px was run instead, as it costs 36% of the 640 px cache instead of 64%",
    "the left-right mirror as augmentation (`train_cached(mirror=True)`): it doubles the trunk cache",
    "an epoch count chosen on data: 12 (3 for stage 7) was fixed beforehand; the inner-validation AUC per epoch is "
    "recorded per setting (inner_val_auc_mean_by_epoch)",
    "full fine-tuning at 512-640 px: not on this CPU (issue 28's GPU recipe is a command of its own)",
    "attention pooling at 384 and 640 px: it trains on the cached maps, not on pooled vectors (minutes per fold "
    "at 640 px here), left out for time; it is measured at 256 px as an extra",
]


def log(msg: str) -> None:
    """One progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def setting_name(size: int, pooling: str, head_norm: bool = False, freeze: int = 9) -> str:
    """'640-avg', '256-avg-bn' when the head's batch norm trains too, '384-avg-stage7' when stage 7 on trains."""
    if freeze != RECIPE["freeze"]:
        return f"{size}-{pooling}-stage{freeze}"
    return f"{size}-{pooling}{'-bn' if head_norm else ''}"


def recipe_for(
    size: int, pooling: str, seed: int = SEED, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The train overrides of one setting (`overrides`: freeze, epochs, lr of a lever)."""
    return {**RECIPE, "size": size, "model_args": {"pooling": pooling}, "seed": seed, **(overrides or {})}


def stage7_overrides() -> dict[str, Any]:
    """The train overrides of the stage-7 lever."""
    return {k: STAGE7[k] for k in ("freeze", "epochs", "lr")}


def command(size: int, pooling: str, head_norm: bool = False, overrides: dict[str, Any] | None = None) -> str:
    """The setting as the library call that trains it (`mammo train --trunk-cache` trains the head norm too)."""
    flags = ", ".join(
        f"{k}={v!r}"
        for k, v in recipe_for(size, pooling, overrides=overrides).items()
        if k not in ("device", "seed")
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


def build_cache(
    prep: Path, rows: pd.DataFrame, size: int, cache: Path, results: dict[str, Any], freeze: int = 9
) -> None:
    """Trunk outputs of `rows` at `size` (what is missing; trunk through feature layer `freeze`), timed."""
    from mammo.models.registry import create_model, get_model_info
    from mammo.models.split import make_cut
    from mammo.train.cache import TrunkCache

    info = get_model_info(RECIPE["model"])
    net = create_model(RECIPE["model"], pretrained=True).eval()
    cut = make_cut(net, info.feature_layers, freeze, RECIPE["model"])
    store = TrunkCache(cache, net, cut, RECIPE["model"], size, info.mean, info.std)
    t0 = time.time()
    n = store.build([prep / p for p in rows["image"]], log=log)
    timing = results.setdefault("cache_seconds_per_image", {})
    key = str(size) if freeze == RECIPE["freeze"] else f"{size}-stage{freeze}"
    if n:
        timing[key] = round((time.time() - t0) / n, 3)
        log(f"cache {key}: {n} images in {time.time() - t0:.0f} s")
    elif key not in timing:  # built by an earlier invocation: the files' own timestamps say how fast
        timing[key] = cache_pace(store.dir)


def cache_pace(folder: Path) -> float | None:
    """Seconds per trunk output from the write times of a cache's files (gaps over a minute, between builds,
    left out)."""
    times = np.sort([f.stat().st_mtime for f in folder.glob("*.npy") if "-" not in f.stem])
    gaps = np.diff(times)
    gaps = gaps[gaps < 60]
    return round(float(gaps.mean()), 3) if len(gaps) else None


def cv_setting(
    prep: Path,
    work: Path,
    cache: Path,
    size: int,
    pooling: str,
    head_norm: bool = False,
    overrides: dict[str, Any] | None = None,
    folds: int = FOLDS,
    train: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """CV of one setting on the cache over the first `folds` of the 5 folds by woman: out-of-fold rows (of the
    folds with predictions) with `score`, and per-fold records. `train=False` only collects finished folds."""
    from mammo.evaluate.cv import assign_folds, fold_dataset, write_fold_prep
    from mammo.train.cached import score_cached, train_cached

    rows = pool_rows(prep)
    fold = assign_folds(rows, FOLDS, SEED)
    freeze = int((overrides or {}).get("freeze", RECIPE["freeze"]))
    name = setting_name(size, pooling, head_norm, freeze)
    out = work / f"cv-{name}"
    scores = pd.Series(np.nan, index=rows["sample_id"])
    record: dict[str, Any] = {"train_seconds": 0.0, "inner_val_auc_by_epoch": [], "folds_run": []}
    for k in range(folds):
        fold_dir = out / f"fold-{k}"
        pred = fold_dir / "pred.csv"
        if not pred.is_file() and not train:
            continue
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
                recipe_for(size, pooling, overrides=overrides),
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
        record["folds_run"].append(k)
        n_train = int((pd.read_csv(fold_dir / "prep" / "dataset.csv")["split"] == "train").sum())
        record["train_images_per_second"] = round(n_train * len(history) / record["train_seconds"], 2)
    curves = np.array(record["inner_val_auc_by_epoch"], dtype=float)
    if len(curves):
        record["inner_val_auc_mean_by_epoch"] = np.round(np.nanmean(curves, axis=0), 4).tolist()
    oof = rows.assign(fold=fold).drop(columns=["image", "split"])
    oof["score"] = scores.loc[oof["sample_id"]].to_numpy(float)
    oof = oof[oof["fold"].isin(record["folds_run"])].reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    oof.to_csv(out / "oof.csv", index=False)
    return oof, record


def paired(oofs: dict[str, pd.DataFrame], a: str, b: str) -> dict[str, Any] | None:
    """AUC(b) - AUC(a) on the same out-of-fold rows, image and breast level, paired by woman."""
    from mammo.stats.baselines import breast_level
    from mammo.stats.paired import paired_delta_auc

    if a not in oofs or b not in oofs:
        return None
    # on the rows both scored (a setting run on fewer folds is paired on its folds' women only)
    x = oofs[a].merge(oofs[b][["sample_id", "score"]].rename(columns={"score": "score_b"}), on="sample_id")
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
    overrides: dict[str, Any] | None = None,
    folds: int = FOLDS,
    train: bool = True,
) -> None:
    """One setting out of fold with its baselines; the paired deltas and the JSON updated after it."""
    from mammo.evaluate.cv import oof_metrics

    settings = results.setdefault("cv", {})
    freeze = int((overrides or {}).get("freeze", RECIPE["freeze"]))
    name = setting_name(size, pooling, head_norm, freeze)
    oof, record = cv_setting(prep, work, work / "cache", size, pooling, head_norm, overrides, folds, train)
    if (
        len(record["folds_run"]) < 2
    ):  # the fitted baselines are fitted out of fold: on the other finished folds
        log(f"{name}: {len(record['folds_run'])} fold finished; a row needs 2")
        return
    partial = len(record["folds_run"]) < FOLDS
    settings[name] = {
        "size": size,
        "pooling": pooling,
        "head_norm": "trained" if head_norm else "pretrained",
        "freeze": freeze,
        "extra": extra,
        "lever": freeze != RECIPE["freeze"],
        "partial": partial,
        "command": command(size, pooling, head_norm, overrides),
        **record,
        **oof_metrics(oof, FOLDS),
    }
    if partial:  # it trains the folds that have no pred.csv yet
        settings[name]["resume"] = (
            f"python bench/real_resolution.py --prep PREP --work WORK --phases stage7 levers test --stage7-folds {FOLDS}"
        )
    m = settings[name]
    log(
        f"{name}: out-of-fold AUC {m['auc']:.3f} ({m['auc_ci_low']:.3f}-{m['auc_ci_high']:.3f}); "
        f"age {m['baselines'].get('age', {}).get('auc', float('nan')):.3f}, "
        f"fused {m['baselines'].get('fused', {}).get('auc', float('nan')):.3f}"
    )
    results["paired_settings"] = settings_pairs(work, settings, results.get("paired_settings"))
    if singles(work, settings):  # a job running only the stage-7 lever has nothing to choose from
        results["chosen"] = choose(work, settings)
    results["targets"] = targets(results)
    save(results)


def singles(work: Path, settings: dict[str, Any]) -> list[str]:
    """The single settings run on all folds, not extras, with their out-of-fold rows under `work` (rows kept in
    the JSON from an earlier session without them can be neither chosen nor ensembled)."""
    return [
        n
        for n, s in settings.items()
        if not s.get("extra")
        and not s.get("partial")
        and s.get("kind") != "ensemble"
        and (work / f"cv-{n}" / "oof.csv").is_file()
    ]


def choose(work: Path, settings: dict[str, Any]) -> str:
    """The single setting with the highest out-of-fold AUC (what one RUN trained by `final` can be; the
    ensemble is reported, not chosen)."""
    return max(singles(work, settings), key=lambda n: settings[n]["auc"])


def stage7_phase(
    prep: Path, work: Path, results: dict[str, Any], train: bool = True, folds: int = STAGE7["folds"]
) -> None:
    """The stage-7 lever: its stage-6 cache at 384 px, then its first `folds` folds (those not done yet when
    `train`)."""
    size, pooling = STAGE7["size"], STAGE7["pooling"]
    if train or (work / f"cv-{setting_name(size, pooling, True, STAGE7['freeze'])}").is_dir():
        build_cache(prep, pool_rows(prep), size, work / "cache", results, STAGE7["freeze"])  # or its pace
        save(results)
    run_setting(
        prep,
        work,
        size,
        pooling,
        True,
        results,
        overrides=stage7_overrides(),
        folds=folds,
        train=train,
    )


def ensemble_phase(work: Path, results: dict[str, Any]) -> None:
    """The out-of-fold ensemble: mean calibrated logit of the ENSEMBLE_SIZE best full-CV single settings."""
    from mammo.evaluate.cv import oof_metrics

    settings = results["cv"]
    members = sorted(singles(work, settings), key=lambda n: -settings[n]["auc"])[:ENSEMBLE_SIZE]
    oofs = [read_oof(work, n) for n in members]
    oof = oofs[0].drop(columns=["score"])
    oof["score"] = ensemble_scores(oof["sample_id"], oofs)
    out = work / "cv-ensemble"
    out.mkdir(parents=True, exist_ok=True)
    oof.to_csv(out / "oof.csv", index=False)
    settings["ensemble"] = {
        "kind": "ensemble",
        "members": members,
        "size": "-",
        "pooling": f"mean logit of {', '.join(members)}",
        "head_norm": "-",
        "extra": False,
        "lever": True,
        "partial": False,
        "train_seconds": sum(settings[n].get("train_seconds", 0) for n in members),
        **oof_metrics(oof, FOLDS),
    }
    m = settings["ensemble"]
    log(
        f"ensemble of {members}: out-of-fold AUC {m['auc']:.3f} ({m['auc_ci_low']:.3f}-{m['auc_ci_high']:.3f})"
    )
    results["paired_settings"] = settings_pairs(work, settings, results.get("paired_settings"))
    save(results)


def ensemble_scores(ids: pd.Series, oofs: list[pd.DataFrame]) -> np.ndarray:
    """Per row of `ids`, the mean of the members' scores (calibrated logits), each looked up by sample id."""
    return np.mean([o.set_index("sample_id").loc[ids, "score"].to_numpy(float) for o in oofs], axis=0)


def read_oof(work: Path, name: str) -> pd.DataFrame:
    """A setting's out-of-fold rows as written by `cv_setting`."""
    return pd.read_csv(work / f"cv-{name}" / "oof.csv", dtype={"sample_id": str, "patient_id": str})


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


def settings_pairs(
    work: Path, settings: dict[str, Any], earlier: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Paired deltas between the measured settings: sizes at one pooling, poolings and extras at one size, every
    lever against BASE_SETTING (the ensemble against its best member too). Pairs of settings whose out-of-fold
    rows are not on disk (an earlier session's) are kept from `earlier`."""
    oofs = {n: read_oof(work, n) for n in settings if (work / f"cv-{n}" / "oof.csv").is_file()}
    main = {n: s for n, s in settings.items() if not s.get("extra") and not s.get("lever")}
    sizes = sorted({s["size"] for s in main.values()})
    poolings = list(dict.fromkeys(s["pooling"] for s in main.values()))
    out = dict(earlier or {})
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
    for name, s in settings.items():
        if name != BASE_SETTING and not s.get("extra") and (s.get("lever") or s["pooling"] == "tiles"):
            p = paired(oofs, BASE_SETTING, name)
            if p:
                out[f"{name} - {BASE_SETTING}"] = p
        if s.get("kind") == "ensemble" and s["members"][0] != BASE_SETTING:
            p = paired(oofs, s["members"][0], name)
            if p:
                out[f"{name} - {s['members'][0]} (its best member)"] = p
    return out


def test_phase(prep: Path, work: Path, results: dict[str, Any]) -> None:
    """The chosen setting trained once on train+val, scored once on test, beside the baselines on the same rows."""
    from mammo.evaluate.cv import POOL_SPLITS, fold_dataset, write_fold_prep
    from mammo.prep.dataset import read_dataset_csv
    from mammo.stats.baselines import breast_block, score_block, split_baselines
    from mammo.stats.paired import paired_delta_auc
    from mammo.train.cached import score_cached, train_cached

    name = results["chosen"]
    size, pooling = results["cv"][name]["size"], results["cv"][name]["pooling"]
    head_norm = results["cv"][name].get("head_norm") == "trained"
    overrides = (
        stage7_overrides()
        if results["cv"][name].get("freeze", RECIPE["freeze"]) == STAGE7["freeze"]
        else None
    )
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
            final / "prep",
            final / "run",
            cache,
            recipe_for(size, pooling, overrides=overrides),
            say=log,
            head_norm=head_norm,
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
    bl = breast_block(test.assign(**scores), scores)
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
    ap.add_argument("--dataset", default=DATASET, help="the name the JSON and README give the prepared set")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument(
        "--stage7-folds", type=int, default=STAGE7["folds"], help="folds of the stage-7 lever (at most 5)"
    )
    ap.add_argument("--poolings", nargs="+", default=list(POOLINGS))
    ap.add_argument(
        "--extras", nargs="+", help="run only these extras (e.g. 384-avg-bn; default: all of EXTRAS)"
    )
    ap.add_argument(
        "--json", type=Path, default=OUT_JSON, help="results file (read first: the run resumes it)"
    )
    ap.add_argument(
        "--phases",
        nargs="+",
        choices=("cv", "stage7", "levers", "test", "extras", "timings"),
        default=["cv", "stage7", "levers", "test", "extras"],
    )
    a = ap.parse_args()
    if not (a.prep / "dataset.csv").is_file():
        sys.exit(f"{a.prep}: no dataset.csv; prepare rsna-screening-640 at 640 px first")
    results = json.loads(a.json.read_text()) if a.json.is_file() else {}
    results["_path"] = a.json
    for name, row in (results.get("cv") or {}).items():  # kept from a run whose folds are not under --work
        row["earlier_run"] = not (a.work / f"cv-{name}" / "oof.csv").is_file()
    made = json.loads((a.prep / "prepare.json").read_text()) if (a.prep / "prepare.json").is_file() else {}
    results["prep"] = {k: made.get(k) for k in ("format", "task", "size", "manifest_sha256", "processing")}
    results.update(
        dataset=a.dataset,
        prep_size=made.get("size") or PREP_SIZE,
        recipe={k: v for k, v in RECIPE.items() if k != "device"},
        folds=FOLDS,
        cut_measurements=CUT_MEASUREMENTS,
        not_measured=NOT_MEASURED,
        prepare_command=f"mammo prepare DATA --out PREP --task whole --size {made.get('size') or PREP_SIZE}",
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
        elif phase == "stage7":
            stage7_phase(a.prep, a.work, results, folds=a.stage7_folds)
        elif phase == "levers":  # collects the stage-7 folds finished so far (another process may train them)
            stage7_phase(a.prep, a.work, results, train=False, folds=a.stage7_folds)
            ensemble_phase(a.work, results)
        else:
            test_phase(a.prep, a.work, results)
        results.setdefault("phase_seconds", {})[phase] = round(time.time() - t0)
        results["targets"] = targets(results)
        save(results)
        log(f"phase {phase} done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    import os

    from mammo.track import tracking

    # MAMMO_TRACK=mlflow (or mlflow,tensorboard) logs every training run and cv of the study
    with tracking(os.environ.get("MAMMO_TRACK"), experiment="real-resolution"):
        main()
