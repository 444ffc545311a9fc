"""mammo.predict.infer: the one inference path gives training's pixels, flip TTA, calibrated probabilities, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mammo.data.phantom import LesionSpec, render
from mammo.datasets import load_prep_image
from mammo.errors import UserError
from mammo.models.checkpoint import make_checkpoint, save_checkpoint
from mammo.predict.infer import logits_from_loader, probabilities, resolve_device
from mammo.predict.run import InputSpec, Run
from mammo.prep.plan import ImageTask, Item
from mammo.prep.pool import process_image

PREP_SIZE, TRAIN_SIZE = 64, 48


def phantom(side: str = "RIGHT", seed: int = 0) -> np.ndarray:
    """A 300 x 200 synthetic mammogram (uint16) with one mass."""
    rng = np.random.default_rng(seed)
    return render((300, 200), side, "CC", 2, [LesionSpec("mass", True, seed)], rng).image


def preprocess_image(image: np.ndarray, input_spec: InputSpec, box=None) -> np.ndarray:
    """The run's source-image preprocessing under test."""
    return input_spec.preprocess(image, box)


def spec(task: str = "whole", context: float | None = None) -> InputSpec:
    """The InputSpec of `preprocessing`'s checkpoint."""
    return InputSpec.from_checkpoint({"preprocessing": preprocessing(task, context)})


def preprocessing(task: str = "whole", context: float | None = None) -> dict:
    """A checkpoint's preprocessing: PREP made at PREP_SIZE, trained at TRAIN_SIZE (load_image resizes)."""
    return {
        "task": task,
        "size": TRAIN_SIZE,
        "mean": 0.3,
        "std": 0.2,
        "input_scale": 65535,
        "prepare": {"task": task, "size": PREP_SIZE, "context": context},
    }


def prep_pipeline(tmp_path, source, task: str, box=None, context: float = 0.5) -> np.ndarray:
    """What training sees: `mammo prepare`'s per-image worker writes the PNG, the train dataset reads it."""
    from mammo.io.images import write_png16

    src = tmp_path / "source.png"
    write_png16(source, src)
    item = Item("s0", {}, "", box)
    outcome = process_image(ImageTask(str(src), task, PREP_SIZE, context, str(tmp_path / "images"), (item,)))
    assert "made" in outcome[0], outcome
    x = load_prep_image(tmp_path / "images" / "s0.png", TRAIN_SIZE)
    return (x - np.float32(0.3)) / np.float32(0.2)


@pytest.mark.parametrize("side", ["LEFT", "RIGHT"])
def test_whole_preprocess_matches_prepare_then_load(tmp_path, side):
    source = phantom(side)
    want = prep_pipeline(tmp_path, source, "whole")
    got = preprocess_image(source, spec("whole"))
    assert got.dtype == np.float32 and got.shape == (1, TRAIN_SIZE, TRAIN_SIZE)
    np.testing.assert_array_equal(got, want)


def test_whole_preprocess_of_8bit_source_matches_its_16bit_copy():
    source8 = (phantom() >> 8).astype(np.uint8)
    got8 = preprocess_image(source8, spec("whole"))
    np.testing.assert_array_equal(got8, preprocess_image(source8.astype(np.uint16) * 257, spec("whole")))


def test_roi_preprocess_with_box_matches_prepare_then_load(tmp_path):
    source = phantom("RIGHT")
    box = (60.0, 100.0, 100.0, 150.0)
    want = prep_pipeline(tmp_path, source, "roi", box=box, context=0.25)
    got = preprocess_image(source, spec("roi", context=0.25), box=box)
    np.testing.assert_array_equal(got, want)


def test_roi_without_box_takes_the_image_as_the_crop():
    crop = np.zeros((40, 20), np.uint16)
    crop[:, :10] = 65535  # left half bright: a centred square window pads 10 columns each side, no flip
    x = preprocess_image(crop, spec("roi", context=0.5))[0] * 0.2 + 0.3
    assert x.shape == (TRAIN_SIZE, TRAIN_SIZE)
    cols = x.mean(axis=0)
    assert cols[: TRAIN_SIZE // 4 - 1].max() < 1e-6  # left padding
    assert cols[TRAIN_SIZE // 4 + 1 : TRAIN_SIZE // 2 - 1].min() > 0.99  # the bright half, not mirrored
    assert cols[TRAIN_SIZE // 2 + 1 :].max() < 1e-6


def test_preprocess_refuses_colour_and_blank_images():
    with pytest.raises(ValueError, match="2-D grayscale"):
        preprocess_image(np.zeros((30, 30, 3), np.uint8), spec())
    with pytest.raises(ValueError, match="no breast"):
        preprocess_image(np.zeros((30, 30), np.uint16), spec())


class HalfModel(torch.nn.Module):
    """Logit = mean(left half) - mean(right half) + bias; `symmetric` makes it mean(whole) instead."""

    def __init__(self, symmetric: bool) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.bias = torch.nn.Parameter(torch.tensor(0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[3] // 2
        score = (
            x.mean(dim=(1, 2, 3))
            if self.symmetric
            else x[..., :half].mean((1, 2, 3)) - x[..., half:].mean((1, 2, 3))
        )
        return (score + self.bias)[:, None]


def batches(n: int = 6, size: int = 8):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size, size, generator=gen)
    y = torch.arange(n, dtype=torch.float32)
    return [(x[:4], y[:4], torch.arange(4)), (x[4:], y[4:], torch.arange(4, n))], x


def test_tta_leaves_a_symmetric_model_unchanged_and_cancels_an_antisymmetric_one():
    loader, x = batches()
    cpu = torch.device("cpu")
    sym = HalfModel(symmetric=True)
    plain, labels = logits_from_loader(sym, loader, cpu)
    tta, _ = logits_from_loader(sym, loader, cpu, tta=True)
    np.testing.assert_allclose(plain, x.mean(dim=(1, 2, 3)).numpy() + 0.25, rtol=1e-6)
    np.testing.assert_allclose(tta, plain, rtol=1e-6)
    np.testing.assert_array_equal(labels, np.arange(6))
    anti = HalfModel(symmetric=False)
    plain, _ = logits_from_loader(anti, loader, cpu)
    tta, _ = logits_from_loader(anti, loader, cpu, tta=True)
    assert np.abs(plain - 0.25).max() > 0.01  # the plain logits do depend on left vs right
    np.testing.assert_allclose(
        tta, 0.25, atol=1e-6
    )  # the mirror's score is the negative: only the bias is left


def test_probabilities_calibrated_and_monotonic():
    logits = np.linspace(-10, 10, 41)
    for t in (0.5, 1.0, 3.0):
        p = probabilities(logits, t)
        assert np.all(np.diff(p) > 0) and p[20] == 0.5 and np.all((p > 0) & (p < 1))
    np.testing.assert_allclose(probabilities(np.array([2.0]), 2.0), 1 / (1 + np.exp(-1.0)))
    assert probabilities(np.array([3.0]), 3.0)[0] < probabilities(np.array([3.0]), 1.0)[0]  # T > 1 softens


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UserError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            resolve_device("cuda")


def test_run_loads_once_and_scores(tmp_path):
    from mammo.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("seed-basic", pretrained=False, input_size=TRAIN_SIZE).eval()
    ckpt = make_checkpoint(
        "seed-basic",
        {"input_size": TRAIN_SIZE},
        model.state_dict(),
        preprocessing("whole"),
        epoch=1,
        best_val_auc=0.5,
        config={},
        threshold=0.3,
        temperature=2.0,
    )
    save_checkpoint(tmp_path / "run" / "best.pt", ckpt)
    pred = Run.load(tmp_path / "run", device="cpu")
    assert (pred.task, pred.threshold, pred.temperature, pred.model_name) == ("whole", 0.3, 2.0, "seed-basic")
    x = np.stack([pred.preprocess(phantom("LEFT")), pred.preprocess(phantom("RIGHT", seed=1))])
    with torch.no_grad():
        want = model(torch.from_numpy(x)).reshape(-1).numpy()
    np.testing.assert_allclose(pred.logits(x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.probabilities(want), 1 / (1 + np.exp(-want / 2.0)), rtol=1e-6)


@pytest.mark.parametrize(("task", "box"), [("whole", None), ("roi", (60.0, 100.0, 100.0, 150.0))])
def test_preprocess_of_an_inverted_source_matches_prepare_of_the_normal_one(tmp_path, task, box):
    from mammo.prep.polarity import invert

    source = phantom("RIGHT")
    want = prep_pipeline(tmp_path, source, task, box=box, context=0.25)
    got = preprocess_image(invert(source), spec(task, context=0.25), box=box)
    np.testing.assert_array_equal(got, want)
