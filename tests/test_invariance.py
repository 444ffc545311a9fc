"""What a user sees of an image does not depend on how it was asked: metamorphic tests of probability and heatmap.

Over every registered model (64 px, the registry's pretrained weights where it has them, else seeded random
ones), loaded as `Run.load` loads a RUN (channels_last, eval): an image's probability and raw Grad-CAM and
Grad-CAM++ maps are the same alone, in a batch of 8, in a shuffled batch and in a batch of 3. Then, on the
default model, across entry points: `predict` (batch sizes, order, workers 0 and 2, ONNX and PyTorch),
`explain` (batch sizes, order, workers), the DICOM scorer of `predict --dicom-out` and `mammo listen` (alone and
in a batch, its heatmap against explain's map), the report's gallery and its "outside" section.

Tolerances: probabilities to 1e-5 (absolute); maps to 1e-4 of the larger map's maximum. Batched kernels sum in
another order than a batch of one (float32 rounding, about 1e-7 per operation, 1e-6 after a network). A map is
a sum over the layer's channels (1280 for EfficientNet) of signed terms that can each be far larger than the
result, so its rounding relative to its own maximum is larger: up to 1.5e-5 seen, hence 1e-4. The batch
dependence these tests were written for moved maps by 50-400% of their maximum (a film's map maximum 0.10 alone,
0.46 in a batch), so 1e-4 still tells a dependence from rounding by three orders of magnitude.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from dicom_results import mg_file, sr_result
from test_predict import mammogram

from mammo.explain.geometry import heatmap_to_source
from mammo.explain.maps import explain_batch, normalise
from mammo.explain.run import explain
from mammo.io.images import to_uint16
from mammo.models.checkpoint import make_checkpoint, save_checkpoint
from mammo.models.registry import create_model, get_model_info, list_models
from mammo.pacs.export import predict_to_dicom
from mammo.pacs.score import Scorer
from mammo.predict.files import Source, predict, read_source
from mammo.predict.run import Run
from mammo.prep.breast import find_breast
from mammo.report.collect import fmt
from mammo.report.outside import outside_section

SIZE = 64
N_IMAGES = 8
PROB_TOL = 1e-5
MAP_TOL = 1e-4
DEFAULT_MODEL = "efficientnet-lite0"


def write_run(run: Path, name: str, size: int = SIZE, seed: int = 0) -> Path:
    """RUN/best.pt of registry model `name` at `size` px: its pretrained weights if it has them, else seeded."""
    info = get_model_info(name)
    torch.manual_seed(seed)
    model = create_model(name, pretrained=info.pretrained, input_size=size).eval()
    pre = {
        "task": "whole",
        "size": size,
        "mean": info.mean,
        "std": info.std,
        "input_scale": 65535,
        "prepare": {"task": "whole", "size": 2 * size},
    }
    ckpt = make_checkpoint(
        name, {"input_size": size}, model.state_dict(), pre, 1, 0.5, {}, threshold=0.4, temperature=1.5
    )
    save_checkpoint(run / "best.pt", ckpt)
    return run


def films(folder: Path, n: int = N_IMAGES) -> list[Path]:
    """n synthetic MG DICOMs, both sides, each its own mass."""
    return [
        mg_file(folder / f"film{i}.dcm", mammogram("LEFT" if i % 2 else "RIGHT", i), PatientID=f"P{i}")
        for i in range(n)
    ]


def assert_maps_close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Maps equal to MAP_TOL of the larger maximum (two all-zero maps are equal)."""
    top = max(float(np.abs(a).max()), float(np.abs(b).max()))
    assert float(np.abs(a - b).max()) <= MAP_TOL * top, (
        f"{what}: maps differ by {np.abs(a - b).max() / top:.2e}"
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return films(tmp_path_factory.mktemp("films"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("runs") / "run", DEFAULT_MODEL)


@pytest.mark.parametrize("name", list_models())
def test_probability_and_maps_do_not_depend_on_batch_mates_or_order(name, tmp_path):
    run = Run.load(write_run(tmp_path / "run", name), device="cpu")
    n = 4
    x = np.stack([run.preprocess(mammogram("LEFT" if i % 2 else "RIGHT", i)) for i in range(n)])
    layer = run.info.gradcam_layer
    mates = [3, 0, 2]  # another order, other batch mates, another batch size
    drawn = 0.0
    for method in ("gradcam", "gradcam++"):
        batch = explain_batch(run.model, torch.from_numpy(x), layer, method)
        drawn = max(drawn, float(batch.maps.max()))
        probs = run.probabilities(batch.logits)
        for i in range(n):
            alone = explain_batch(run.model, torch.from_numpy(x[i : i + 1]), layer, method)
            what = f"{name} {method} image {i}"
            assert run.probabilities(alone.logits)[0] == pytest.approx(probs[i], abs=PROB_TOL), what
            assert_maps_close(alone.maps[0], batch.maps[i], f"{what}: alone vs in a batch of {n}")
        other = explain_batch(run.model, torch.from_numpy(x[mates]), layer, method)
        assert run.probabilities(other.logits) == pytest.approx(probs[mates], abs=PROB_TOL)
        for k, i in enumerate(mates):
            assert_maps_close(other.maps[k], batch.maps[i], f"{name} {method} image {i}: batch {mates}")
    assert drawn > 0, f"{name}: every map is zero, the test compared nothing"


def test_predict_probability_does_not_depend_on_batch_order_workers_or_backend(default_run, images):
    def probs(paths, **kwargs) -> dict[str, float]:
        rows = predict(default_run, paths, device="cpu", **kwargs).rows
        return dict(zip(rows["path"], rows["probability_malignant"], strict=True))

    reference = probs(images, batch_size=N_IMAGES, workers=0, backend="torch")
    assert len(reference) == N_IMAGES and all(0 < p < 1 for p in reference.values())
    shuffled = [images[i] for i in np.random.default_rng(1).permutation(N_IMAGES)]
    for kwargs in (
        {"paths": images, "batch_size": 1, "workers": 0, "backend": "torch"},
        {"paths": shuffled, "batch_size": 3, "workers": 2, "backend": "torch"},
        {"paths": images, "batch_size": N_IMAGES, "workers": 0, "backend": "onnx"},
        {"paths": shuffled, "batch_size": 1, "workers": 2, "backend": "onnx"},
        {"paths": images[5:6], "workers": 0, "backend": "torch"},
    ):
        got = probs(**kwargs)
        for path, p in got.items():
            assert p == pytest.approx(reference[path], abs=PROB_TOL), (path, kwargs)


def _explained(run: Path, paths: list[Path], out: Path, **kwargs) -> dict[str, tuple[float, np.ndarray]]:
    """explain's probability and raw map (its .npy) per input file name."""
    rows = explain(run, paths, out, device="cpu", features=False, **kwargs).rows
    return {Path(r["image"]).name: (r["probability"], np.load(r["heatmap"])) for r in rows}


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_explain_does_not_depend_on_batch_order_or_workers(default_run, images, tmp_path, method):
    reference = _explained(
        default_run, images, tmp_path / "ref", method=method, batch_size=N_IMAGES, workers=0
    )
    shuffled = [images[i] for i in np.random.default_rng(2).permutation(N_IMAGES)]
    for k, (paths, batch_size, workers) in enumerate(
        ((images, 1, 0), (shuffled, 3, 2), (images[3:4], N_IMAGES, 0))
    ):
        out = tmp_path / f"got{k}"
        got = _explained(default_run, paths, out, method=method, batch_size=batch_size, workers=workers)
        for name, (p, heat) in got.items():
            what = f"{name} batch {batch_size}, workers {workers}"
            assert p == pytest.approx(reference[name][0], abs=PROB_TOL), what
            assert_maps_close(heat, reference[name][1], what)
    predicted = predict(default_run, images, device="cpu", workers=0, backend="torch").rows
    for path, p in zip(predicted["path"], predicted["probability_malignant"], strict=True):
        assert p == pytest.approx(reference[Path(path).name][0], abs=PROB_TOL), path


@pytest.fixture(scope="module")
def explained(default_run, images, tmp_path_factory) -> tuple[Path, dict[str, tuple[float, np.ndarray]]]:
    """explain's folder and (probability, raw map) per file of the films in one batch of 8, as the demo does."""
    out = tmp_path_factory.mktemp("explained") / "real-films"
    return out, _explained(default_run, images, out, batch_size=N_IMAGES, workers=0)


def test_the_dicom_scorer_and_dicom_out_agree_with_explain(default_run, images, explained, tmp_path):
    """The node scores a batch (`mammo listen`) or one file (`explain --dicom-out`); `predict --dicom-out`
    writes predict's probability: each equals explain's, and the node's heatmap is explain's map laid on the
    source (the same geometry as explain's source overlay, to one grey level)."""
    reference = explained[1]
    scorer = Scorer.load(default_run, device="cpu")
    batch = scorer.score(images)
    uids = {}
    for path, item in zip(images, batch, strict=True):
        p, heat = reference[path.name]
        alone = scorer.score([path])[0]
        assert item.score.probability == pytest.approx(p, abs=PROB_TOL), path.name
        assert alone.score.probability == pytest.approx(p, abs=PROB_TOL), path.name
        image, _ = read_source(Source(str(path)))
        breast = find_breast(to_uint16(image))
        expected = np.rint(heatmap_to_source(normalise(heat), breast.box, breast.flip, image.shape[:2]) * 255)
        assert np.abs(item.heat.astype(int) - expected).max() <= 1, path.name
        uids[item.sop_uid] = p
    written = predict_to_dicom(default_run, images, tmp_path / "dicom", device="cpu", workers=0).written
    srs = [sr_result(pydicom.dcmread(f)) for f in written if f.name.endswith(".sr.dcm")]
    assert len(srs) == N_IMAGES
    for prob, _, _, ref in srs:
        assert prob == pytest.approx(uids[ref], abs=PROB_TOL), ref


def test_the_reports_outside_section_shows_what_one_film_alone_gets(default_run, images, explained):
    """The demo explains the real films together and the report shows that folder; each film's probability
    there is the one `mammo predict` gives it alone."""
    folder, reference = explained
    html, n = outside_section(folder, synthetic=True)
    assert n == N_IMAGES
    for path in images:
        alone = predict(default_run, [path], device="cpu", workers=0, backend="torch").rows
        p = float(alone["probability_malignant"].iloc[0])
        assert p == pytest.approx(reference[path.name][0], abs=PROB_TOL)
        assert f"{path.parent.name}/{path.name}: malignant probability {fmt(p)}" in html


def test_the_reports_gallery_maps_are_each_images_map_alone(default_run, tmp_path):
    """The gallery draws its picks' maps in one batch; each is the map of that image explained alone."""
    from conftest import make_prep

    from mammo.report.build import gallery_maps

    prep = make_prep(tmp_path / "prep", n_train=0, n_val=0, n_test=4, size=SIZE)
    run = Run.load(default_run, device="cpu")
    x, maps = gallery_maps(run, prep, pd.read_csv(prep / "dataset.csv"))
    assert maps.shape == (4, SIZE, SIZE) and maps.max() > 0
    for i in range(4):
        alone = explain_batch(run.model, torch.from_numpy(x[i : i + 1, None]), run.info.gradcam_layer)
        assert_maps_close(alone.maps[0], maps[i], f"gallery image {i}")
