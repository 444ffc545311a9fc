"""docs/mlflow.png: runs tracked with `--track mlflow` in the MLflow UI, photographed by headless Chromium.

    python bench/mlflow_screenshot.py [--work DIR] [--out docs/mlflow.png]
Makes a small synthetic download (`mammo synth`), prepares it at 64 px, starts a throwaway `mlflow server` on
loopback (tests/mlflow_server.py: SQLite store, artifacts under --work), trains three small efficientnet-lite0 runs
(three learning rates) and a 2-fold `mammo cv` with tracking on, then photographs the experiment's runs table and the best run's page (its tags, metrics).
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
WINDOW = (1600, 1000)
ASSISTANT_PX = 410  # MLflow 3's assistant panel on the right of every page
RUNS_TABLE_PX = 380  # the runs table's header and rows
RUN_PAGE_PX = 1500  # the run's page down to its first metrics
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


def photograph(url: str, out: Path) -> Path:
    """The experiment's runs (the cv's folds nested under it) above the best training run's page, one PNG.

    The right ASSISTANT_PX of each page (MLflow's assistant panel, empty here) and the empty rows under the runs
    table are cut off.
    """
    import mlflow
    from PIL import Image

    client = mlflow.MlflowClient(url)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = [r for r in client.search_runs([experiment]) if r.data.tags.get("mammo.kind") == "train"]
    best = max(runs, key=lambda r: r.data.metrics.get("best_val_auc", 0.0)).info.run_id
    width = WINDOW[0] - ASSISTANT_PX
    with tempfile.TemporaryDirectory(prefix="mammo-shots-") as tmp:
        table = screenshot(f"{url}/#/experiments/{experiment}/runs", Path(tmp) / "runs.png")
        page = screenshot(
            f"{url}/#/experiments/{experiment}/runs/{best}", Path(tmp) / "run.png", (WINDOW[0], RUN_PAGE_PX)
        )
        with Image.open(table) as top, Image.open(page) as bottom:
            top, bottom = top.crop((0, 0, width, RUNS_TABLE_PX)), bottom.crop((0, 0, width, RUN_PAGE_PX))
            both = Image.new("RGB", (width, top.height + bottom.height), "white")
            both.paste(top, (0, 0))
            both.paste(bottom, (0, top.height))
        out.parent.mkdir(parents=True, exist_ok=True)
        both.save(out)
    return shrink(out)


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
            shot = photograph(url, args.out)
    print(f"wrote {shot} ({shot.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
