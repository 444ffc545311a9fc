"""`mammo cv`: k-fold cross-validation by woman over train+val, pooled out-of-fold predictions, AUC with CI.

One training run per fold, each in OUT/fold-k/: the held-out fold is that run's `test` split (scored once by
`mammo evaluate`), and its early stopping and calibration use an inner validation set carved by woman from
the other folds, so no out-of-fold prediction was chosen or calibrated on its own women. The test split of
PREP is never read here. A fold whose predictions exist is skipped, so an interrupted CV resumes where it
stopped. Pooled predictions go to OUT/oof.csv (score = the fold's calibrated logit, logit / temperature, so
folds share one scale), numbers to OUT/metrics.json, with the shortcut baselines fitted out of fold too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from mammo.errors import DataError, UserError
from mammo.io.atomic import json_safe, write_csv, write_json
from mammo.prep.splits import carve, woman_labels
from mammo.stats.baselines import breast_level, cross_fit_baselines, score_block
from mammo.stats.paired import paired_delta_auc
from mammo.track.hooks import CvHooks, current

POOL_SPLITS = ("train", "val")
FOLD_COLUMNS = ["sample_id", "patient_id", "label", "fold"]


@dataclass
class CVResult:
    """What `cv` wrote: OUT, the pooled metrics (as in OUT/metrics.json) and the folds it trained now."""

    out: Path
    metrics: dict[str, Any]
    trained: list[int]

    def summary(self) -> str:
        """The out-of-fold AUC with its interval, each baseline beside it, and where everything is."""
        m = self.metrics

        def line(name: str, b: dict[str, Any]) -> str:
            def f(v: Any) -> str:
                return "n/a" if v is None else f"{v:.3f}"

            return f"  {name:<12} AUC {f(b.get('auc'))} [95% CI {f(b.get('auc_ci_low'))}-{f(b.get('auc_ci_high'))}]"

        lines = [
            f"{m['folds']}-fold CV by woman over {', '.join(POOL_SPLITS)}: {m['n']} samples of {m['n_women']} "
            f"women ({m['n_pos']} malignant); out-of-fold",
            line("image", m),
        ]
        lines += [line(name, b) for name, b in (m.get("baselines") or {}).items()]
        if "breast_level" in m:
            lines.append(line("breast", m["breast_level"]) + f" on {m['breast_level']['n']} breasts")
        lines.append(f"  -> {self.out} (oof.csv, metrics.json, fold-*/run)")
        return "\n".join(lines)


def assign_folds(
    rows: pd.DataFrame, folds: int, seed: int, fold_of: Mapping[str, int] | None = None
) -> np.ndarray:
    """The fold (0..folds-1) of every row: given per woman by `fold_of`, else StratifiedGroupKFold by woman."""
    if fold_of is not None:
        missing = sorted(set(rows["patient_id"]) - set(fold_of))
        if missing:
            raise DataError(f"--fold-table: no fold for woman {missing[0]} (and {len(missing) - 1} more)")
        return rows["patient_id"].map(fold_of).astype(int).to_numpy()
    women = rows.groupby("patient_id")["label"].max()
    if folds < 2 or women.value_counts().min() < folds:
        raise UserError(
            f"--folds {folds}: needs at least 2 and at most the number of women of the rarer class "
            f"({int(women.value_counts().min())})"
        )
    fold = np.full(len(rows), -1)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(rows, rows["label"].astype(int), rows["patient_id"])):
        fold[held] = k
    return fold


def read_fold_table(path: str | os.PathLike) -> dict[str, int]:
    """A CSV with columns patient_id, fold -> {patient_id: fold}; DataError when a column is missing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: fold table not found")
    table = pd.read_csv(path, dtype={"patient_id": str})
    if not {"patient_id", "fold"} <= set(table.columns):
        raise DataError(f"{path}: needs columns patient_id and fold")
    return dict(zip(table["patient_id"], table["fold"].astype(int), strict=True))


def fold_dataset(
    rows: pd.DataFrame, fold: np.ndarray, k: int, prep: Path, val_fraction: float, seed: int
) -> pd.DataFrame:
    """dataset.csv of fold k: fold k as `test`, an inner `val` carved by woman from the rest, the rest `train`.

    Image paths become absolute so the fold's PREP is a small folder of tables that reads the original images.
    """
    df = rows.copy()
    df["image"] = [str((prep / p).resolve()) for p in df["image"]]
    rest = df[fold != k]
    _, val_women = carve(woman_labels(rest), val_fraction, seed + k)
    df["split"] = np.where(fold == k, "test", np.where(df["patient_id"].isin(set(val_women)), "val", "train"))
    return df


def write_fold_prep(prep: Path, fold_prep: Path, df: pd.DataFrame) -> None:
    """The fold's PREP: dataset.csv and prepare.json (the preprocessing record checkpoints carry)."""
    fold_prep.mkdir(parents=True, exist_ok=True)
    write_csv(df, fold_prep / "dataset.csv")
    if (prep / "prepare.json").is_file():
        (fold_prep / "prepare.json").write_text((prep / "prepare.json").read_text())


def _check_folds(out: Path, table: pd.DataFrame) -> None:
    """A resumed CV must have the same samples in the same folds as the one it continues."""
    path = out / "folds.csv"
    if not path.is_file():
        write_csv(table, path)
        return
    old = pd.read_csv(path, dtype={"sample_id": str, "patient_id": str})
    if (
        old["sample_id"].tolist() != table["sample_id"].tolist()
        or old["fold"].tolist() != table["fold"].tolist()
    ):
        raise UserError(
            f"{path}: OUT holds a CV with other samples or folds; choose another --out or the same PREP/--seed"
        )


def run_cv(
    prep: str | os.PathLike,
    out: str | os.PathLike,
    folds: int = 5,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    val_fraction: float = 0.15,
    fold_table: str | os.PathLike | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
    trunk_cache: str | os.PathLike | None = None,
) -> CVResult:
    """Train one run per fold over PREP's train+val (grouped by woman), score each held-out fold, pool, report.

    Args:
        prep: PREP folder; its train and val rows are pooled, its test split is never used.
        out: CV folder for fold-k/run, oof.csv and metrics.json.
        folds: number of folds, grouped by woman.
        seed: seed of the folds and of every run.
        overrides: TrainConfig keys for every fold's run, as `train`'s flags (None values = unset).
        config_file: YAML train config for every fold.
        val_fraction: share of each fold's training women kept for early stopping and calibration.
        fold_table: CSV patient_id,fold giving the folds; None draws them.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        log: where progress lines go.
        trunk_cache: train each fold with the cached-trunk recipe (`mammo train --trunk-cache`) on trunk outputs
            kept in this folder, computed once per image and shared by every fold; None trains whole networks.

    Example:
        >>> from mammo.evaluate import run_cv
        >>> print(run_cv("prep/rsna256", "cv/rsna", folds=5, overrides={"epochs": 6}).summary())
    """
    from mammo.prep.dataset import read_dataset_csv

    prep, out = Path(prep), Path(out)
    rows = read_dataset_csv(prep)
    rows = rows[rows["split"].isin(POOL_SPLITS)].reset_index(drop=True)
    if rows.empty:
        raise DataError(f"{prep / 'dataset.csv'}: no train or val rows to cross-validate")
    rows["label"] = rows["label"].astype(int)
    fold_of = read_fold_table(fold_table) if fold_table is not None else None
    fold = assign_folds(rows, folds, seed, fold_of)
    folds = int(fold.max()) + 1
    flags = {**(overrides or {}), "device": device, "seed": seed}
    _check_config(flags, config_file, trunk_cache)
    out.mkdir(parents=True, exist_ok=True)
    _check_folds(out, rows.assign(fold=fold)[FOLD_COLUMNS])
    params = {**flags, "folds": folds, "val_fraction": val_fraction, "config_file": config_file}
    with current().cv(out, params, prep) as hooks:
        trained = _train_folds(
            prep, out, rows, fold, flags, config_file, val_fraction, seed, device, log, hooks, trunk_cache
        )
        oof = pool_predictions(out, rows, fold)
        metrics = json_safe(oof_metrics(oof, folds))
        metrics["train_seconds"] = round(
            sum(pd.read_csv(out / f"fold-{k}" / "run" / "metrics.csv")["seconds"].sum() for k in range(folds))
        )
        write_csv(oof, out / "oof.csv")
        write_json(metrics, out / "metrics.json")
        hooks.finished(metrics)
    return CVResult(out, metrics, trained)


def _check_config(
    flags: dict[str, Any], config_file: str | os.PathLike | None, trunk_cache: str | os.PathLike | None
) -> None:
    """Every fold's train config resolved once before OUT is made: a bad value is one line and leaves nothing."""
    from mammo.train.config import read_yaml, resolve_config

    cfg = resolve_config([read_yaml(config_file)] if config_file is not None else [], flags)
    if trunk_cache is not None and cfg.device == "cuda":
        raise UserError("--trunk-cache: a cached-trunk run trains on the CPU; use --device cpu or auto")


def _train_folds(
    prep: Path,
    out: Path,
    rows: pd.DataFrame,
    fold: np.ndarray,
    flags: dict[str, Any],
    config_file: str | os.PathLike | None,
    val_fraction: float,
    seed: int,
    device: str,
    log: Callable[[str], None],
    hooks: CvHooks,
    trunk_cache: str | os.PathLike | None = None,
) -> list[int]:
    """Train and score every fold not done earlier (OUT/fold-k/run); the folds trained now."""
    from mammo.evaluate.run import evaluate
    from mammo.train.cached import train_cached
    from mammo.train.loop import train

    folds = int(fold.max()) + 1
    trained = []
    for k in range(folds):
        fold_dir = out / f"fold-{k}"
        pred_file = fold_dir / "run" / "eval" / "test" / "predictions.csv"
        if pred_file.is_file():
            log(f"fold {k + 1}/{folds}: done earlier, kept")
            continue
        t0 = time.time()
        df = fold_dataset(rows, fold, k, prep, val_fraction, seed)
        write_fold_prep(prep, fold_dir / "prep", df)
        n = df["split"].value_counts()
        log(
            f"fold {k + 1}/{folds}: train {n.get('train', 0)}, inner val {n.get('val', 0)}, "
            f"held out {n.get('test', 0)} samples"
        )
        run = fold_dir / "run"
        if trunk_cache is not None:
            if run.exists():  # a cached fold cut off mid-way: retrained from its cache, which is kept
                shutil.rmtree(run)
            train_cached(fold_dir / "prep", run, trunk_cache, overrides=flags, config_file=config_file)
        else:
            train(
                fold_dir / "prep",
                run,
                config_file=config_file,
                overrides=flags,
                resume=(run / "last.pt").is_file(),
            )
        res = evaluate(run, data=fold_dir / "prep", split="test", device=device)
        hooks.evaluated(run, res.metrics)
        trained.append(k)
        log(f"fold {k + 1}/{folds}: held-out AUC {res.metrics['auc']:.3f} in {time.time() - t0:.0f} s")
    return trained


def fold_scores(
    out: str | os.PathLike,
    prep: str | os.PathLike,
    rows: pd.DataFrame,
    tta: bool = False,
    device: str = "cpu",
    folds: list[int] | None = None,
) -> np.ndarray:
    """Calibrated logits (logit / temperature) of every fold model of CV folder `out` on `rows` of PREP: folds x rows.

    For scoring a split no fold saw (the fold-model ensemble is their mean), or, with `tta`, for redoing the
    out-of-fold scores with horizontal-flip test-time augmentation.
    """
    runs = sorted(Path(out).glob("fold-*/run"), key=lambda p: int(p.parent.name.split("-")[1]))
    if folds is not None:
        runs = [Path(out) / f"fold-{k}" / "run" for k in folds]
    if not runs:
        raise DataError(f"{out}: no fold-k/run folders; run `mammo cv` first")
    return np.stack([run_scores(run, prep, rows, tta, device) for run in runs])


def run_scores(
    run: str | os.PathLike,
    prep: str | os.PathLike,
    rows: pd.DataFrame,
    tta: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """Calibrated logits (logit / temperature) of RUN's best checkpoint on `rows` of PREP."""
    from mammo.predict.run import Run

    loaded = Run.load(run, device=device)
    return loaded.score_rows(rows, prep, tta=tta, desc="rescore") / loaded.temperature


def pool_predictions(out: Path, rows: pd.DataFrame, fold: np.ndarray) -> pd.DataFrame:
    """Every fold's held-out predictions in one table: the rows of PREP with fold, logit, score, probability."""
    parts = []
    for k in range(int(fold.max()) + 1):
        run = out / f"fold-{k}" / "run"
        pred = pd.read_csv(run / "eval" / "test" / "predictions.csv", dtype={"sample_id": str})
        temperature = json.loads((run / "eval" / "test" / "metrics.json").read_text())["temperature"]
        pred["score"] = pred["logit"] / temperature
        parts.append(pred[["sample_id", "logit", "score", "probability"]])
    pooled = pd.concat(parts).set_index("sample_id")
    oof = rows.assign(fold=fold).drop(columns=["image", "split"])
    missing = set(oof["sample_id"]) - set(pooled.index)
    if missing:
        raise DataError(f"{out}: fold predictions lack {len(missing)} samples; delete OUT and rerun")
    return oof.join(pooled, on="sample_id")


def oof_metrics(oof: pd.DataFrame, folds: int) -> dict[str, Any]:
    """Pooled out-of-fold AUC (95% CI by woman), breast level, per-fold AUCs and the out-of-fold baselines."""
    labels, groups = oof["label"].to_numpy(int), oof["patient_id"].to_numpy()
    metrics: dict[str, Any] = {"folds": folds, **score_block(labels, oof["score"].to_numpy(float), groups)}
    metrics["n_women"] = len(np.unique(groups))
    metrics["per_fold_auc"] = [
        score_block(g["label"].to_numpy(int), g["score"].to_numpy(float), None, n_boot=0)["auc"]
        for _, g in oof.groupby("fold")
    ]
    baselines, scores = cross_fit_baselines(oof, oof["fold"].to_numpy(int), image_score="score")
    metrics["baselines"] = baselines
    breasts = breast_level(oof.assign(**scores), ["score", *scores])
    if breasts is not None:
        b_labels, b_groups = breasts["label"].to_numpy(int), breasts["patient_id"].to_numpy()
        metrics["breast_level"] = {
            **score_block(b_labels, breasts["score"].to_numpy(float), b_groups),
            "baselines": {
                name: score_block(b_labels, breasts[name].to_numpy(float), b_groups) for name in scores
            },
        }
    metrics["paired"] = paired_comparisons(oof.assign(**scores), groups)
    return metrics


def paired_comparisons(rows: pd.DataFrame, groups: np.ndarray) -> dict[str, dict[str, float]]:
    """Delta-AUC with paired intervals by woman: image and fused against each shortcut, fused against image."""
    labels = rows["label"].to_numpy(int)
    pairs = [
        ("metadata", "score"),
        ("age", "score"),
        ("geometry", "score"),
        ("metadata", "fused"),
        ("age", "fused"),
        ("score", "fused"),
    ]
    out = {}
    for a, b in pairs:
        if a in rows.columns and b in rows.columns:
            keep = rows[a].notna().to_numpy() & rows[b].notna().to_numpy()
            name = f"{'image' if b == 'score' else b} - {'image' if a == 'score' else a}"
            out[name] = paired_delta_auc(
                labels[keep], rows[a].to_numpy(float)[keep], rows[b].to_numpy(float)[keep], groups[keep]
            )
    return out
