"""`mammo predict`: new mammograms (DICOM, PNG, JPEG, PGM, TIFF, or folders of them) -> calibrated probabilities.

The run's model is loaded once, on ONNX Runtime or PyTorch (`mammo.predict.backend`). Files are read, decoded
and preprocessed (the run's own `prepare` recipe, via `mammo.predict.run.InputSpec.preprocess`) in worker
processes, in input order, at most a few per worker ahead (full-resolution pixels never leave the workers; only
the small model inputs queue), and batched across files into the model in this process, so decoding the next
files overlaps the forward pass of the current batch. Every input gets one row; a file that cannot be scored
(unreadable, truncated, colour, absurdly large, no breast found) gets its reason in `error` and no probability,
and the rest goes on. The seconds spent in each stage (read, decode, preprocess, forward) are summed in
`PredictResult.stages` and logged at -v.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo.data.manifest import BOX_COLUMNS
from mammo.data.table import SIDES, read_table
from mammo.errors import DataError, UserError, without_path
from mammo.io.atomic import check_output_file, write_csv, write_text
from mammo.io.cluster import check_cluster, connect
from mammo.io.dicom import DICOM_SUFFIXES, read_header, read_pixels
from mammo.io.images import IMAGE_SUFFIXES, is_dicom_path, open_header, read_image, to_uint16
from mammo.io.limits import MIN_SOURCE_SIDE
from mammo.io.pool import ordered_map
from mammo.predict.backend import Scorer, load_scorer
from mammo.predict.run import InputSpec, Run

log = logging.getLogger(__name__)
T = TypeVar("T")

COLUMNS = [
    "path",
    "level",
    "patient_id",
    "side",
    "view",
    "n_images",
    "probability_malignant",
    "prediction",
    "threshold",
    "logit",
    "model",
    "run",
    "tta",
    "error",
]
GRAY_MODES = {
    "1",
    "L",
    "LA",
    "La",
    "I",
    "F",
    "I;16",
    "I;16B",
    "I;16L",
    "I;16N",
}  # PIL modes with one grey band
AGGREGATES = ("breast",)
log = logging.getLogger(__name__)
STAGES = ("read", "decode", "preprocess", "forward")
# Images per forward pass when --batch-size is not given. On CPU both backends are fastest per image at batch 1
# (bench/bench_predict.py, efficientnet-lite0 at 512 px on 2 cores: PyTorch eager 2.5x slower per image at
# batch 8, ONNX Runtime 1.2-1.5x), and batch 1 keeps the pipeline's latency and memory smallest; a GPU wants
# batches.
CPU_BATCH_SIZE, CUDA_BATCH_SIZE = 1, 8


@dataclass(frozen=True)
class Source:
    """One input image and what is known about it beforehand (from --table or --box)."""

    path: str
    box: tuple[float, float, float, float] | None = None
    patient_id: str = ""
    side: str = ""
    view: str = ""


@dataclass(frozen=True)
class Loaded:
    """A worker's answer for one Source: the model input (or the reason there is none) and header ids."""

    x: np.ndarray | None
    error: str
    patient_id: str
    side: str
    view: str
    seconds: tuple[float, float, float] = (0.0, 0.0, 0.0)  # read, decode, preprocess
    warning: str = ""  # scored, but worth a word to the user (a source smaller than any mammogram)


@dataclass
class PredictResult:
    """The output rows (one per input, plus breast rows with --aggregate), where they were written, timings."""

    rows: pd.DataFrame
    out: Path | None
    run: Path
    model: str
    tta: bool
    load_seconds: float
    predict_seconds: float
    backend: str = "torch"
    stages: dict[str, float] | None = None  # seconds summed over images per stage, plus 'wait' and 'images'
    first_seconds: float = float(
        "nan"
    )  # from the model loaded to the first batch scored (pool start included)

    @property
    def marginal_seconds(self) -> float:
        """Seconds per image after the first batch: the steady-state cost of one more image."""
        n = self.n_scored + self.n_failed
        return (self.predict_seconds - self.first_seconds) / (n - 1) if n > 1 else self.predict_seconds

    @property
    def n_scored(self) -> int:
        """Images that got a probability."""
        images = self.rows[self.rows["level"] == "image"]
        return int(images["probability_malignant"].notna().sum())

    @property
    def n_failed(self) -> int:
        """Images that got an error instead of a probability."""
        images = self.rows[self.rows["level"] == "image"]
        return int(images["probability_malignant"].isna().sum())

    @property
    def exit_code(self) -> int:
        """0 when at least one input was scored, 1 when none was."""
        return 0 if self.n_scored else 1

    def summary(self, limit: int = 20) -> str:
        """Each row (up to `limit`) on one line, then counts, timing and where the full table is."""
        lines = []
        for r in self.rows.head(limit).itertuples():
            where = r.path if r.level == "image" else f"{r.patient_id} {r.side} (mean of {r.n_images} views)"
            if pd.isna(r.probability_malignant):
                lines.append(f"  {where}: error: {r.error}")
            else:
                lines.append(f"  {where}: p(malignant) {r.probability_malignant:.3f} -> {r.prediction}")
        if len(self.rows) > limit:
            lines.append(
                f"  ... {len(self.rows) - limit} more rows" + (f" in {self.out}" if self.out else "")
            )
        n = self.n_scored + self.n_failed
        rate = n / self.predict_seconds if self.predict_seconds > 0 else float("nan")
        lines.append(
            f"scored {self.n_scored} of {n} images with {self.model}{' (flip TTA)' if self.tta else ''}, "
            f"{self.n_failed} with errors; model loaded in {self.load_seconds:.1f} s, "
            f"{self.predict_seconds:.1f} s for the images ({rate:.1f}/s, {self.backend})"
        )
        if self.out:
            lines.append(f"  -> {self.out}")
        return "\n".join(lines)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x0,y0,x1,y1' (source pixels, x0 < x1, y0 < y1) -> four floats; UserError otherwise."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]) or min(box) < 0:
        raise UserError(f"--box {text!r}: give x0,y0,x1,y1 in source pixels with x0 < x1 and y0 < y1")
    return box  # type: ignore[return-value]


def _is_image_file(path: Path) -> bool:
    """A file a folder walk picks up: an image suffix, a DICOM suffix, or the DICOM preamble (no suffix)."""
    if path.name.startswith("."):
        return False
    suffix = path.suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES or is_dicom_path(path)


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[Source], list[str]]:
    """Files as given (even unreadable ones: they get an error row) and folders walked recursively, sorted;
    and one note per folder that is empty or holds files that are not images (notes.txt, a CSV: skipped).

    Hidden files are skipped silently; the notes exist so that "scored 2 of 2" never hides a file the user
    expected to be scored.
    """
    sources, notes = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                notes.append(f"{path}: an empty folder; give a folder of image or DICOM files")
            image = {p: _is_image_file(p) for p in files}
            skipped = [str(p.relative_to(path)) for p in files if not image[p]]
            if skipped:
                more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
                many = len(skipped) > 1
                notes.append(
                    f"{path}: skipped {len(skipped)} file{'s' if many else ''} that {'are' if many else 'is'} "
                    f"not an image ({', '.join(skipped[:3])}{more}); give image or DICOM files"
                )
            sources += [Source(str(p)) for p in files if image[p]]
        else:
            sources.append(Source(str(path)))
    return sources, notes


def table_sources(table: str | os.PathLike) -> list[Source]:
    """Sources from a table in the ingest format, read by ingest's reader (`mammo.data.table.read_table`).

    Columns: image (required), optional patient_id, side, view, x_min, y_min, x_max, y_max.
    """
    table = Path(table)
    df, notes = read_table(table)
    for note in notes:
        log.info(note)
    if "image" not in df.columns:
        raise UserError(
            f"{table}: no column image; a table needs image (optional: patient_id, side, view, "
            "x_min, y_min, x_max, y_max)"
        )
    if df.empty:
        raise UserError(f"{table}: no rows; list one image per row under the header")
    base = table.resolve().parent
    sources = []
    for i, row in df.iterrows():
        box = None
        values = [str(row.get(c, "")).strip() for c in BOX_COLUMNS]
        if all(values):
            try:
                box = parse_box(",".join(values))
            except UserError:
                raise UserError(
                    f"{table} row {i + 2}: lesion box {values} is not x0 < x1, y0 < y1 numbers"
                ) from None
        sources.append(
            Source(
                path=os.path.abspath(base / Path(str(row["image"]).strip()).expanduser()),
                box=box,
                patient_id=str(row.get("patient_id", "")).strip(),
                side=SIDES.get(str(row.get("side", "")).strip().upper(), ""),
                view=str(row.get("view", "")).strip().upper(),
            )
        )
    return sources


def gather_sources(
    inputs: Iterable[str | os.PathLike] = (), table: str | os.PathLike | None = None
) -> list[Source]:
    """The inputs (folders walked recursively) then the table's rows; UserError when there is nothing to score."""
    sources, notes = expand_inputs(inputs)
    sources += table_sources(table) if table is not None else []
    if not sources and notes:
        alike = f" (and {len(notes) - 1} more folders alike)" if len(notes) > 1 else ""
        raise UserError(f"no input images: {notes[0]}{alike}")
    if not sources:
        raise UserError("no input images: give files or folders (searched recursively), or --table T.csv")
    for note in notes:
        log.warning(note)
    return sources


def check_run_dir(run_dir: str | os.PathLike, onnx: bool = False, needs: str = "heatmaps") -> Path:
    """RUN/best.pt, checked without torch so that a mistyped RUN is refused at once, not after loading torch.

    With `onnx` (predict) an exported .onnx file, or a RUN holding only model.onnx, passes too. Without it
    (`needs` says what wants the checkpoint: explain's heatmaps, predict's --dicom-out) a file given as RUN is
    named as a file and the user is told which folder to give instead.
    """
    run_dir = Path(run_dir)
    if onnx and run_dir.suffix.lower() == ".onnx":
        if not run_dir.is_file():
            raise UserError(
                f"{run_dir}: no such ONNX model; export one with `mammo export RUN --out model.onnx`"
            )
        return run_dir
    if onnx and (run_dir / "model.onnx").is_file() and not (run_dir / "best.pt").is_file():
        return run_dir / "model.onnx"
    only_scores = "an exported .onnx only scores, with `mammo predict` without --dicom-out"
    if run_dir.is_file():
        raise UserError(
            f"{run_dir} is a file, not a RUN folder: {needs} need the checkpoint (best.pt) of the folder written "
            f"by `mammo train`" + (f"; {only_scores}" if run_dir.suffix.lower() == ".onnx" else "")
        )
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such RUN folder; give the folder written by `mammo train`")
    best = run_dir / "best.pt"
    if not best.is_file():
        if (run_dir / "model.onnx").is_file():
            raise UserError(f"{best}: checkpoint not found, and {needs} need it; {only_scores}")
        raise UserError(f"{best}: checkpoint not found; train first with `mammo train PREP --out RUN`")
    return best


def check_paths(
    run_dir: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    table: str | os.PathLike | None,
    onnx: bool = False,
) -> None:
    """The command line's paths before anything heavy loads: RUN has a checkpoint (or, with `onnx`, is an
    exported model), every input and the table exist (a table's own rows may name missing files: those get an
    error row)."""
    check_run_dir(run_dir, onnx)
    for item in inputs:
        if not Path(item).exists():
            raise UserError(f"{item}: no such file or folder")
    if table is not None:
        table_sources(table)


def sources_for(
    sources: Sequence[Source],
    task: str,
    run_dir: str | os.PathLike,
    box: tuple[float, float, float, float] | None = None,
    crops: bool = False,
) -> list[Source]:
    """The sources as a run of `task` can score them, or one UserError line saying what is missing.

    whole runs take whole mammograms (no boxes). roi runs score a window around a lesion: each source needs a
    box (its table row's, else `box`), unless `crops` says the inputs without one are lesion crops already.
    """
    if task != "roi":
        for flag, given in (("--box", box is not None), ("--crops", crops)):
            if given:
                raise UserError(f"{flag}: {run_dir} is a whole-image run; {flag} is for roi (lesion) runs")
        return [replace(s, box=None) for s in sources]
    if box is not None and crops:
        raise UserError("--box and --crops exclude each other: a box is cut out of a whole image")
    out = [s if s.box is not None or box is None else replace(s, box=box) for s in sources]
    missing = [s.path for s in out if s.box is None]
    if missing and not crops:
        raise UserError(
            f"{run_dir} is an roi run: it scores a window around a lesion, and {len(missing)} input(s) have no "
            f"lesion box (first: {missing[0]}); give --box x0,y0,x1,y1 or a --table with x_min,y_min,x_max,y_max, "
            "or --crops if the inputs are lesion crops already"
        )
    return out


def _refuse_colour(path: Path) -> None:
    """DataError for a colour image file (channels that differ); grey stored as RGB passes."""
    import cv2

    with open_header(path) as im:
        mode = im.mode
    if mode in GRAY_MODES:
        return
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is not None and img.ndim == 3 and img.shape[2] >= 3:
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
        if not (np.array_equal(b, g) and np.array_equal(g, r)):
            raise DataError(
                f"{path}: colour image ({mode}); mammograms are grayscale: convert it to grayscale first"
            )


def read_ids(source: Source) -> Source:
    """The read stage: the file opened and its header read; ids from the table where given, else the DICOM's.

    A colour image file is refused here, before its pixels are decoded.
    """
    path = Path(source.path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not is_dicom_path(path):
        _refuse_colour(path)
        return source
    header = read_header(path)
    return Source(
        source.path,
        source.box,
        source.patient_id or header.patient_id,
        source.side or SIDES.get(header.laterality.strip().upper(), ""),
        source.view or header.view.upper(),
    )


def decode_pixels(path: str | os.PathLike) -> np.ndarray:
    """The decode stage: the file's pixels as display-ready uint16."""
    return to_uint16(read_pixels(path) if is_dicom_path(path) else read_image(path))


def read_source(source: Source) -> tuple[np.ndarray, Source]:
    """The source's pixels as uint16 and its ids, the table's where given, else the DICOM header's."""
    known = read_ids(source)
    return decode_pixels(source.path), known


def _reason(exc: Exception, path: str) -> str:
    """One line for the error column, without the path that is already in the row."""
    text = " ".join(without_path(exc, path).split())
    return text if isinstance(exc, (UserError, ValueError)) else f"{type(exc).__name__}: {text}"


def small_image_warning(image: np.ndarray) -> str:
    """Why a decoded source smaller than MIN_SOURCE_SIDE on a side deserves a warning ('' for any other)."""
    rows, cols = image.shape[:2]
    if min(rows, cols) >= MIN_SOURCE_SIDE:
        return ""
    return (
        f"{rows}x{cols} pixels, smaller than {MIN_SOURCE_SIDE} on a side: no mammogram is, so its "
        "probability means nothing; give the full-size image"
    )


def load_source(source: Source, spec: InputSpec) -> tuple[Loaded, np.ndarray | None, np.ndarray | None]:
    """Read, decode and preprocess one source, timing each stage: (its Loaded, the decoded uint16 image, the
    prepared PREP square); the two images are None when it failed."""
    known, image, prepared, x, error, warning = source, None, None, None, "", ""
    marks = [time.perf_counter()]
    try:
        known = read_ids(source)
        marks.append(time.perf_counter())
        image = decode_pixels(source.path)
        marks.append(time.perf_counter())
        warning = small_image_warning(image)
        prepared = spec.prepare_source(image, source.box)
        x = spec.from_prepared(prepared)
    except Exception as exc:  # a bad file gets its row and the rest goes on
        image, prepared, error = None, None, _reason(exc, source.path)
    marks += [time.perf_counter()] * (4 - len(marks))
    seconds = (marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2])
    loaded = Loaded(
        x, error, known.patient_id, known.side, known.view, seconds, warning if x is not None else ""
    )
    return loaded, image, prepared


def load_input(job: tuple[Source, InputSpec]) -> Loaded:
    """Worker: read, decode and preprocess one source; any failure becomes its one-line reason."""
    return load_source(*job)[0]


def batches(loaded: Iterator[Loaded], batch_size: int) -> Iterator[list[tuple[int, Loaded]]]:
    """(input index, Loaded) pairs in groups: a group closes when it holds batch_size images to score."""
    group: list[tuple[int, Loaded]] = []
    ready = 0
    for i, item in enumerate(loaded):
        group.append((i, item))
        ready += item.x is not None
        if ready == batch_size:
            yield group
            group, ready = [], 0
    if group:
        yield group


def aggregate_breasts(
    rows: pd.DataFrame,
    threshold: float,
    class_names: Sequence[str],
    calibrate: Callable[[np.ndarray], np.ndarray],
) -> pd.DataFrame:
    """One level=breast row per breast (woman + side) with a scored image: its views' logits averaged.

    The breast's logit is the mean over its views of the mean logit of each view's images
    (`mammo.stats.breasts.breast_scores`: never the other breast, never a count), calibrated by `calibrate` (the
    scorer's `probabilities`) as an image's logit is.
    The woman and side come from patient_id and side, or from a CBIS-DDSM PatientID that names both.
    """
    from mammo.stats.breasts import breast_scores, with_breast_keys

    scored = rows[(rows["level"] == "image") & rows["logit"].notna()]
    breasts = breast_scores(scored, ["logit"], label=None)
    if breasts is None:
        return pd.DataFrame(columns=COLUMNS)
    keyed = with_breast_keys(scored)
    out = []
    for b in breasts.itertuples(index=False):
        group = scored[(keyed["woman"] == b.patient_id) & (keyed["breast_side"] == b.side)]
        p = float(calibrate(np.array([b.logit]))[0])
        out.append(
            {
                "path": ";".join(group["path"]),
                "level": "breast",
                "patient_id": b.patient_id,
                "side": b.side,
                "view": b.views,
                "n_images": int(b.n_images),
                "probability_malignant": p,
                "prediction": class_names[int(p >= threshold)],
                "threshold": threshold,
                "logit": float(b.logit),
                "model": group["model"].iloc[0],
                "run": group["run"].iloc[0],
                "tta": group["tta"].iloc[0],
                "error": "",
            }
        )
    return pd.DataFrame(out, columns=COLUMNS)


def write_output(rows: pd.DataFrame, out: Path) -> None:
    """CSV or JSON (a list of records, null where there is no probability) by the suffix, written atomically."""
    if out.suffix.lower() == ".json":
        write_text(rows.to_json(orient="records", indent=2) + "\n", out)
    else:
        write_csv(rows, out)


def check_args(
    out: str | os.PathLike | None, aggregate: str | None, batch_size: int | None, workers: int
) -> None:
    """The options of `predict`, checked before anything loads: the output suffix, the level, the counts."""
    if out is not None and Path(out).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--out {out}: give a .csv or .json file name")
    if out is not None:
        check_output_file(out)
    if aggregate is not None and aggregate not in AGGREGATES:
        raise UserError(f"--aggregate {aggregate!r}: the only level is breast")
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UserError(f"--workers must be 0 (read in this process) or more, got {workers}")


def default_batch_size(scorer: Scorer) -> int:
    """Images per forward pass when none is given: CPU_BATCH_SIZE, or CUDA_BATCH_SIZE for PyTorch on a GPU."""
    on_gpu = isinstance(scorer, Run) and scorer.device.type == "cuda"
    return CUDA_BATCH_SIZE if on_gpu else CPU_BATCH_SIZE


def _where(workers: int) -> str:
    """Where files are decoded, for the -v stages line."""
    return f"in {workers} worker process{'es' if workers > 1 else ''}" if workers else "in this process"


def log_stages(stages: dict[str, float], where: str) -> None:
    """One -v line: seconds per image of each stage (decoded `where`), and how long the model waited for them."""
    n = max(int(stages["images"]), 1)
    read, decode, preprocess, forward = (stages[k] / n for k in STAGES)
    log.debug(
        "stages, s/image: read %.3f, decode %.3f, preprocess %.3f (%s); forward %.3f; model waited %.3f",
        read,
        decode,
        preprocess,
        where,
        forward,
        stages["wait"] / n,
    )


def predict(
    run_dir: str | os.PathLike,
    inputs: Sequence[str | os.PathLike] = (),
    out: str | os.PathLike | None = None,
    table: str | os.PathLike | None = None,
    box: tuple[float, float, float, float] | None = None,
    crops: bool = False,
    aggregate: str | None = None,
    tta: bool = False,
    batch_size: int | None = None,
    workers: int = 1,
    device: str = "auto",
    run: Scorer | None = None,
    backend: str = "auto",
    cluster: str | None = None,
) -> PredictResult:
    """Score images with RUN's model: one row per input (path, calibrated probability, prediction...).

    `run_dir` is a RUN folder or a .onnx file from `mammo export`; `backend` picks ONNX Runtime or PyTorch
    (`mammo.predict.backend`). `inputs` are files or folders (walked recursively); `table` adds rows of the
    ingest table format. An roi run needs a lesion box per input: the table's, else `box`; `crops` says the
    inputs without one are lesion crops already (UserError otherwise, see `sources_for`). `run` reuses a
    loaded model (a `Run` or an `OnnxModel`). `batch_size` None is the measured best (`default_batch_size`).
    With workers > 0 and more than one input, files are decoded in forkserver processes, so a script must call
    this under `if __name__ == "__main__":`. `cluster` (a Dask scheduler address, or local:N) reads and scores
    the files on the cluster's workers instead, on ONNX Runtime (`mammo.predict.cluster`; `workers` and
    `batch_size` are then unused); the workers must see the input files at the same paths.
    """
    check_args(out, aggregate, batch_size, workers)
    check_cluster(cluster)
    if run is None:
        check_run_dir(run_dir, onnx=True)
    sources = gather_sources(inputs, table)
    started = time.perf_counter()
    pred = run or load_scorer(run_dir, backend, device)
    if cluster:
        from mammo.predict.cluster import check_scorer  # it builds on this module's readers

        check_scorer(pred)
    engine = "torch" if isinstance(pred, Run) else "onnx"
    loaded_at = time.perf_counter()
    sources = sources_for(sources, pred.task, run_dir, box, crops)

    names = pred.class_names
    common = {
        "threshold": pred.threshold,
        "model": pred.model_name,
        "run": str(Path(run_dir).resolve()),
        "tta": tta,
    }
    batch_size = batch_size or default_batch_size(pred)
    workers = workers if len(sources) > 1 else 0  # one file: no pool to start
    stages = dict.fromkeys((*STAGES, "wait", "images"), 0.0)
    records: list[dict] = []
    first: float | None = None
    with (
        connect(cluster) if cluster else nullcontext() as client,
        tqdm(total=len(sources), unit="img", desc="predict", disable=len(sources) < 2) as bar,
    ):
        if client is None:
            jobs = ((s, pred.spec) for s in sources)
            loaded = ordered_map(
                load_input, jobs, min(workers, len(sources)), preload=["mammo.predict.files"]
            )
            scored = _score_here(pred, batches(loaded, batch_size), tta, stages)
        else:
            from mammo.predict.cluster import cluster_scores  # it builds on this module's readers

            scored = _cluster_groups(cluster_scores(client, pred, sources, tta), stages)
        for group in scored:
            for item, logit in group:
                for name, seconds in zip(STAGES, item.seconds, strict=False):
                    stages[name] += seconds
                stages["images"] += 1
                row = {
                    "path": sources[len(records)].path,
                    "level": "image",
                    "patient_id": item.patient_id,
                    "side": item.side,
                    "view": item.view,
                    "n_images": 1,
                    "probability_malignant": float("nan"),
                    "prediction": "",
                    "logit": float("nan"),
                    **common,
                    "error": item.error,
                }
                if item.warning:
                    log.warning("%s: %s", sources[len(records)].path, item.warning)
                if logit is not None:
                    p = float(pred.probabilities(np.array([logit]))[0])
                    row |= {
                        "logit": logit,
                        "probability_malignant": p,
                        "prediction": names[int(p >= pred.threshold)],
                    }
                records.append(row)
            bar.update(len(group))
            first = first if first is not None else time.perf_counter()
    log_stages(stages, f"on the cluster {cluster}" if cluster else _where(workers))
    rows = pd.DataFrame(records, columns=COLUMNS)
    if aggregate == "breast":
        breasts = aggregate_breasts(rows, pred.threshold, names, pred.probabilities)
        rows = pd.concat([rows, breasts], ignore_index=True)
    done = time.perf_counter()
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        write_output(rows, out_path)
    return PredictResult(
        rows,
        out_path,
        Path(run_dir),
        pred.model_name,
        tta,
        loaded_at - started,
        done - loaded_at,
        engine,
        stages,
        (first or done) - loaded_at,
    )


def _timed(items: Iterator[T]) -> Iterator[tuple[T, float]]:
    """Each item with the seconds spent waiting for it (the model waiting for the decoding workers)."""
    while True:
        t = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        yield item, time.perf_counter() - t


def _score_here(
    pred: Scorer, groups: Iterator[list[tuple[int, Loaded]]], tta: bool, stages: dict[str, float]
) -> Iterator[list[tuple[Loaded, float | None]]]:
    """Each group of loaded files scored in this process, one forward pass a group: (Loaded, logit or None)."""
    for group, waited in _timed(groups):
        stages["wait"] += waited
        ok = [item.x for _, item in group if item.x is not None]
        t = time.perf_counter()
        logits = iter(pred.logits(np.stack(ok), tta=tta) if ok else [])
        stages["forward"] += time.perf_counter() - t
        yield [(item, float(next(logits)) if item.x is not None else None) for _, item in group]


def _cluster_groups(
    scored: Iterator[tuple[Loaded, float | None, float]], stages: dict[str, float]
) -> Iterator[list[tuple[Loaded, float | None]]]:
    """The cluster's answers one file a group, their forward seconds and the time waited for them counted."""
    for (item, logit, forward), waited in _timed(scored):
        stages["wait"] += waited
        stages["forward"] += forward
        yield [(item, logit)]
