"""`mammo report RUN`: gather a run's config, data, metrics, baselines, subgroups, explanation checks and a
gallery of its most confident hits and misses with their heatmaps into one self-contained HTML file."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import mammo
from mammo.errors import DataError
from mammo.io.atomic import check_output_file, write_text
from mammo.report import collect
from mammo.report.collect import fmt
from mammo.report.render import Section, esc, figures, img_tag, page, paragraph, table

if TYPE_CHECKING:
    from mammo.predict.run import Run

SECTION_IDS = (
    "summary",
    "data",
    "metrics",
    "baselines",
    "training",
    "plots",
    "subgroups",
    "explanations",
    "gallery",
    "outside",
    "config",
)
EVAL_PLOTS = (
    ("roc.png", "ROC curve"),
    ("pr.png", "precision-recall curve"),
    ("calibration.png", "reliability diagram"),
    ("confusion.png", "confusion matrix"),
)


@dataclass
class ReportResult:
    """Where the report went and what it holds."""

    path: Path
    sections: list[str]
    n_images: int

    def summary(self) -> str:
        """One line."""
        return f"report with {len(self.sections)} sections and {self.n_images} images: {self.path}"


def png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG bytes, then release it."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    fig.clear()
    return buf.getvalue()


def training_curves(history: pd.DataFrame, kept: int | None = None) -> bytes:
    """Loss (train, validation) and validation AUC per epoch, side by side; the kept epoch marked on both."""
    fig = Figure(figsize=(9, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    loss, auc = fig.subplots(1, 2)
    for col, label in (("train_loss", "train"), ("val_loss", "validation")):
        if col in history.columns:
            loss.plot(history["epoch"], history[col], marker="o", label=label)
    loss.set(xlabel="epoch", ylabel="loss (BCE)", title="Loss")
    loss.legend()
    if "val_auc" in history.columns:
        auc.plot(history["epoch"], history["val_auc"], marker="o", color="C2")
    auc.set(xlabel="epoch", ylabel="AUC", title="Validation AUC", ylim=(0.4, 1.0))
    auc.axhline(0.5, ls="--", color="grey", lw=1)
    if kept is not None:
        for ax in (loss, auc):
            ax.axvline(kept, color="C3", lw=1.5, ls=":", label=f"kept: epoch {kept}")
        auc.legend(loc="lower right")
        loss.legend()
    return png_bytes(fig)


def _metrics_row(label: str, m: dict[str, Any]) -> dict[str, Any]:
    """One line of the metrics table from a metrics.json block (the split's, or its breast level)."""
    return {
        "split": label,
        "AUC (95% CI by woman)": f"{fmt(m.get('auc'))} ({fmt(m.get('auc_ci_low'))}-{fmt(m.get('auc_ci_high'))})",
        "accuracy": fmt(m.get("accuracy")),
        "sensitivity": fmt(m.get("sensitivity")),
        "specificity": fmt(m.get("specificity")),
        "threshold": fmt(m.get("threshold")),
        "ECE (uncalibrated)": f"{fmt(m.get('ece'))} ({fmt(m.get('ece_uncalibrated'))})",
        "Brier": fmt(m.get("brier")),
        "samples": m.get("n"),
        "malignant": m.get("n_pos"),
        "women": m.get("n_women"),
    }


def _metrics_rows(run_dir: Path) -> pd.DataFrame:
    """Per evaluated split, its line, then its breast-level line (each breast the mean of its views' logits)."""
    rows = []
    for split in ("val", "test"):
        m = collect.read_metrics(run_dir, split)
        if m is None:
            continue
        rows.append(_metrics_row(split, m))
        if m.get("breast_level"):
            rows.append(_metrics_row(f"{split}, per breast (mean of its views' logits)", m["breast_level"]))
    return pd.DataFrame(rows)


def _config_section(run: Run) -> str:
    config_file = run.run_dir / "config.yaml"
    config = (
        yaml.safe_load(config_file.read_text())
        if config_file.is_file()
        else dict(run.ckpt.get("config") or {})
    )
    spec = run.spec
    fixed = {
        "task": spec.task,
        "input size": spec.size if spec.width is None else f"{spec.size} x {spec.width}",
        "normalisation (mean, std)": ", ".join(fmt(v) for v in (spec.mean, spec.std)),
        "threshold (chosen on validation)": fmt(run.threshold),
        "temperature (fitted on validation)": fmt(run.temperature),
        "best epoch": run.ckpt.get("epoch"),
    }
    config = collect.effective_config(config, run.ckpt.get("trained_on"))
    items = [*fixed.items(), *((k, v) for k, v in config.items())]
    return table(pd.DataFrame([{"setting": k, "value": "" if v is None else v} for k, v in items]))


def _subgroup_section(metrics: dict[str, Any], pred: pd.DataFrame | None, split: str) -> str:
    groups = metrics.get("subgroups") or (collect.subgroups(pred) if pred is not None else {})
    if not groups:
        return paragraph(
            f"The {split} rows carry no metadata field with two or more values (site, machine, view, "
            "age, density), so there are no subgroups to compare."
        )
    parts = [
        paragraph(
            "AUC per value of each metadata field, with a 95% bootstrap interval that resamples women. "
            "Small groups give wide intervals.",
            "muted",
        )
    ]
    for name, rows in groups.items():
        df = pd.DataFrame(
            [
                {
                    "value": r.get("value"),
                    "samples": r.get("n"),
                    "malignant": r.get("n_pos"),
                    "AUC (95% CI)": f"{fmt(r.get('auc'))} ({fmt(r.get('auc_ci_low'))}-{fmt(r.get('auc_ci_high'))})",
                }
                for r in rows
            ]
        )
        parts.append(f"<h3>{esc(name)}</h3>" + table(df, numeric=("samples", "malignant")))
    return "".join(parts)


def _checks_section(checks: dict[str, Any] | None) -> str:
    if not checks or not checks.get("n"):
        return paragraph(
            "No lesion masks are known for the correctly classified malignant samples of this split, "
            "so the heatmaps could not be checked against the lesions."
        )
    df = pd.DataFrame(collect.check_verdicts(checks))
    return (
        paragraph(
            f"{checks['method']} heatmaps on {checks['n']} true-positive samples of the {checks['split']} split."
        )
        + table(df)
        + paragraph(
            "In lesion crops (roi task) the lesion sits near the centre, so a map that merely prefers the centre also "
            "scores in the pointing game; the randomisation check is the guard against maps that do not depend on "
            "what the model learned.",
            "muted",
        )
    )


def gallery_maps(run: Run, prep: Path, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(model inputs (B, H, W), Grad-CAM maps (B, H, W)) of PREP rows, read as training reads them, in one batch."""
    import torch

    from mammo.explain.maps import heatmaps

    ds = run.dataset(rows.reset_index(drop=True), prep)
    x = torch.stack([ds[i][0] for i in range(len(ds))]).to(run.device)
    return x[:, 0].cpu().numpy(), heatmaps(run.model, x, run.info.gradcam_layer, "gradcam")


def _gallery_section(run: Run, prep: Path, pred: pd.DataFrame, k: int) -> tuple[str, int]:
    """The most confident hits and misses of evaluate's predictions, with heatmaps on the run's own inputs."""
    from mammo.explain.figures import overlay_figure

    picks = collect.gallery_picks(pred, run.threshold, k)
    parts, n = (
        [
            paragraph(
                "The most confident cases of each kind, each with its Grad-CAM heatmap (hot = evidence "
                "for malignant).",
                "muted",
            )
        ],
        0,
    )
    for kind, rows in picks.items():
        parts.append(f"<h3>{esc(kind)}</h3>")
        if rows.empty:
            parts.append(paragraph(f"none on this split at threshold {fmt(run.threshold)}"))
            continue
        x, maps = gallery_maps(run, prep, rows)
        tags = []
        for i, (_, r) in enumerate(rows.iterrows()):
            truth = "malignant" if r["label"] else "benign"
            title = f"p={r['probability']:.2f}, {truth}"
            tags.append(
                img_tag(
                    png_bytes(overlay_figure(x[i], maps[i], title)),
                    f"{kind}: {r['sample_id']}",
                    f"{r['sample_id']}: malignant probability {r['probability']:.2f}, truly {truth} "
                    f"(woman {r['patient_id']})",
                )
            )
            n += 1
        parts.append(figures(tags, "figs gallery"))
    return "".join(parts), n


def build_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    split: str = "test",
    device: str = "auto",
    gallery_k: int = 4,
    outside: str | os.PathLike | None = None,
) -> ReportResult:
    """Write one self-contained HTML report of RUN (default RUN/report.html) from its evaluation of `split`.

    The numbers are what `mammo evaluate` (and the explanation checks) wrote; the run's model is loaded once,
    for the gallery's heatmaps and for checks that were not measured yet.

    Args:
        run_dir: RUN folder, evaluated with `mammo evaluate` on `split`.
        out: HTML file to write; None = RUN/report.html.
        split: the evaluation to report, "val" or "test".
        device: "auto" (CUDA when present), "cpu" or "cuda".
        gallery_k: the k most confident true positives, false positives and false negatives in the gallery.
        outside: an `explain` output folder of images not in the run's data, shown in their own section.

    Example:
        >>> from mammo.report import build_report
        >>> print(build_report("runs/lite0", split="test").summary())
    """
    from mammo.predict.files import check_run_dir
    from mammo.predict.run import Run
    from mammo.prep.dataset import read_dataset_csv, read_prepare_json

    run_dir = Path(run_dir)
    check_run_dir(run_dir, needs="the report's heatmaps")
    if out is not None:
        check_output_file(out)
    if outside is not None:  # paths first: a typo is one line at once, not after the model has loaded
        from mammo.report.outside import check_outside

        check_outside(Path(outside))
    metrics = collect.read_metrics(run_dir, split)
    if metrics is None:
        raise DataError(
            f"{run_dir}: no eval/{split}/metrics.json; run `mammo evaluate {run_dir} --split {split}` first"
        )
    run = Run.load(run_dir, device=device)
    prep = run.prep_dir()
    dataset = read_dataset_csv(prep)
    pred_file = run_dir / "eval" / split / "predictions.csv"
    pred = None
    if pred_file.is_file():
        pred = collect.with_metadata(
            pd.read_csv(pred_file, dtype={"sample_id": str, "patient_id": str}), dataset
        )
    n_images = 0
    model_name = run.model_name

    headline = (
        f"{model_name} on {metrics.get('task', '?')} samples: {split} AUC {fmt(metrics.get('auc'))} "
        f"(95% CI {fmt(metrics.get('auc_ci_low'))}-{fmt(metrics.get('auc_ci_high'))}, by woman) on "
        f"{metrics.get('n')} samples of {metrics.get('n_women')} women"
    )
    prepare_info = read_prepare_json(prep) or dict(run.spec.prepare)
    banner = collect.synthetic_banner(prepare_info)
    summary = paragraph(banner, "warn banner") if banner else ""
    summary += paragraph(headline, "big")
    shortcut = collect.shortcut_note(metrics)
    summary += paragraph(shortcut, "warn") if shortcut else ""
    summary += "".join(paragraph(f"warning: {w}", "warn") for w in metrics.get("warnings") or [])
    if (metrics.get("prediction_spread") or {}).get("near_constant"):
        summary += paragraph("The predictions barely move between images: the model has not learned.", "warn")

    plot_tags = []
    for name, caption in EVAL_PLOTS:
        f = run_dir / "eval" / split / name
        if f.is_file():
            plot_tags.append(img_tag(f.read_bytes(), caption, caption))
    n_images += len(plot_tags)

    history = run_dir / "metrics.csv"
    if history.is_file() and len(pd.read_csv(history)):
        kept = run.ckpt.get("epoch")
        training = img_tag(
            training_curves(pd.read_csv(history), kept),
            "training curves",
            f"loss and validation AUC per epoch; the dotted line marks epoch {kept}, the one kept (best "
            "validation AUC)",
        )
        n_images += 1
    else:
        training = paragraph("RUN/metrics.csv is missing or empty: no training history to show.")

    from mammo.explain.checks import cached_checks

    checks = cached_checks(run_dir, split, device, run=run)
    if checks.get("n"):
        pointing, randomisation = collect.check_verdicts(checks)
        summary += paragraph(
            f"Heatmaps: pointing game {pointing['value']} ({pointing['verdict']}: bar {pointing['bar']}) on "
            f"{checks['n']} true positives; rank correlation with a random-weights model "
            f"{randomisation['value']} ({randomisation['verdict']}: bar {randomisation['bar']})."
        )
    gallery, n_gallery = (
        _gallery_section(run, prep, pred, gallery_k)
        if pred is not None
        else (paragraph(f"no eval/{split}/predictions.csv"), 0)
    )
    n_images += n_gallery
    if outside is not None:
        from mammo.report.outside import outside_section

        outside_html, n_outside = outside_section(Path(outside), banner is not None)
        n_images += n_outside
    else:
        outside_html = paragraph(
            "No images outside the run's data were explained (`mammo report RUN --outside EXPLAIN_DIR` shows "
            "the output of `mammo explain` here).",
            "muted",
        )

    sections = [
        Section("summary", "Summary", summary),
        Section(
            "data",
            "Data",
            paragraph(f"PREP folder: {prep}", "muted")
            + table(collect.data_summary(dataset), numeric=("samples", "benign", "malignant", "women")),
        ),
        Section(
            "metrics",
            "Metrics",
            table(_metrics_rows(run_dir))
            + paragraph(
                "Threshold and temperature are chosen on validation and only applied to test.", "muted"
            ),
        ),
        Section(
            "baselines",
            "Baselines",
            table(
                collect.baselines_table(metrics)
                .assign(
                    auc=lambda d: d["auc"].map(fmt),
                    low=lambda d: d["low"].map(fmt),
                    high=lambda d: d["high"].map(fmt),
                )
                .rename(columns={"auc": "AUC", "low": "CI low", "high": "CI high"})
            ),
        ),
        Section("training", "Training", training),
        Section(
            "plots",
            f"Plots ({split})",
            figures(plot_tags) if plot_tags else paragraph("no plots in the evaluation folder"),
        ),
        Section("subgroups", "Subgroups", _subgroup_section(metrics, pred, split)),
        Section("explanations", "Explanation checks", _checks_section(checks)),
        Section("gallery", "Gallery", gallery),
        Section("outside", "Outside the training data", outside_html),
        Section("config", "Configuration", _config_section(run)),
    ]
    target = Path(out) if out is not None else run_dir / "report.html"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = page(
        f"mammo report: {run_dir.name}",
        f"{run_dir.resolve()} - {headline}",
        sections,
        f"made by mammo {mammo.__version__} on {stamp}; self-contained, no network needed",
    )
    write_text(text, target)
    return ReportResult(path=target, sections=[s.id for s in sections], n_images=n_images)
