"""docs/mlflow.png: runs tracked with `--track mlflow` in the MLflow UI, photographed by headless Chromium.

    python bench/mlflow_screenshot.py [--work DIR] [--out docs/mlflow.png]
Makes a small synthetic download (`mammo synth`), prepares it at 64 px, starts a throwaway `mlflow server` on
loopback (tests/mlflow_server.py: SQLite store, artifacts under --work), trains three small efficientnet-lite0 runs
(three learning rates) and a 2-fold `mammo cv` with tracking on, then photographs the experiment's runs table.
Needs the track extra and `chromium` (Debian: apt-get install chromium). Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mlflow_server import mlflow_server  # noqa: E402

EXPERIMENT = "mammo-demo"
WINDOW = (1600, 900)
# small on purpose (a picture of the tracker, not a result): 64 px, the first 5 feature layers kept pretrained
RECIPE = {
    "model": "efficientnet-lite0",
    "size": 64,
    "epochs": 3,
    "freeze": 5,
    "batch_size": 16,
    "max_train_batches": 3,
    "workers": 0,
    "device": "cpu",
}
LEARNING_RATES = (1e-3, 3e-4, 1e-4)


def tracked_runs(work: Path) -> None:
    """synth -> ingest -> prepare (64 px), then three tracked trainings and one tracked 2-fold cv under `work`."""
    from mammo.data.cbis import ingest_cbis
    from mammo.data.synth import make_download
    from mammo.evaluate.cv import run_cv
    from mammo.prep.run import prepare
    from mammo.track import tracking
    from mammo.train.loop import train

    make_download(work / "download", women=40, layout="descriptive", size="small", seed=0)
    ingest_cbis(work / "download", work / "data")
    prep = work / "prep"
    prepare(work / "data", prep, task="whole", size=64, workers=0)
    with tracking("mlflow", experiment=EXPERIMENT):
        for lr in LEARNING_RATES:
            train(prep, work / "runs" / f"lite0-lr{lr:g}", overrides={**RECIPE, "lr": lr})
        run_cv(prep, work / "runs" / "cv-lite0", folds=2, overrides={**RECIPE, "epochs": 2}, log=print)


def screenshot(url: str, out: Path, window: tuple[int, int] = WINDOW) -> Path:
    """Render `url` in headless Chromium at `window` (width, height), the page's scripts given 20 s; PNG to `out`."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mammo-shot-") as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                "--virtual-time-budget=20000",
                f"--window-size={window[0]},{window[1]}",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return out


def shrink(png: Path, colours: int = 128) -> Path:
    """Rewrite the PNG with a `colours`-entry palette (a UI screenshot loses nothing visible; the file shrinks)."""
    from PIL import Image

    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)
    return png


def main() -> None:
    """Track the runs into a fresh server, photograph its runs table, write --out."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--work", type=Path, help="folder for the data, runs and server (default: a temporary one)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "mlflow.png")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mammo-mlflow-") as tmp:
        work = args.work or Path(tmp)
        with mlflow_server(work / "server") as url:
            os.environ["MLFLOW_TRACKING_URI"] = url
            tracked_runs(work)
            import mlflow

            experiment = mlflow.MlflowClient(url).get_experiment_by_name(EXPERIMENT)
            shot = screenshot(f"{url}/#/experiments/{experiment.experiment_id}/runs", args.out)
    print(f"wrote {shrink(shot)} ({shot.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
