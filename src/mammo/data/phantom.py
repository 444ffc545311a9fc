"""Synthetic mammograms as pure functions (numpy out): breast, tissue texture, lesions, film marker.

Everything here is deterministic given a `numpy.random.Generator` and does no I/O; `mammo.data.synth` turns
the arrays into a CBIS-DDSM-like download. Intensities are built in [0, 1] (bright = dense).

- The breast is a half-ellipse whose flat side is the chest wall: it touches the left image edge for a LEFT
  breast and the right edge for a RIGHT one. Its brightness falls off towards the skin line (thinner tissue),
  with a thin brighter skin band. MLO views add a bright pectoral-muscle triangle at the top of the chest
  wall.
- Tissue texture is Gaussian-filtered noise at three scales, stretched along the nipple-chest-wall axis, made
  denser for higher BI-RADS density; a fine grain is added at full resolution.
- Lesions depend on pathology. Benign masses are round or oval with a smooth, circumscribed edge and lower
  contrast; malignant masses are irregular (lobulated outline), denser, with spicules radiating outwards.
  Benign calcifications are a few coarse round dots; malignant ones many fine, pleomorphic dots with short
  linear branches. The ROI mask is the lesion outline (mass: core plus the spicules near it; calc: the
  cluster).
- Malignant lesions are not all obvious: each draws a conspicuity c in [0, 1] (CONSPICUITY_POWER sets how
  often it is low) that moves its look from benign (c = 0: round, no visible spicules, benign contrast, few
  coarse scattered dots) to the full malignant pattern (c = 1), as real cancers range from subtle to obvious.
  The mask is the true outline: lobulated, with the spicules as far as they show. This caps how well any model
  can separate the classes, so the demo's AUC reads like a real task, not a perfect one.
- A bright film label with text sits in a corner away from the breast, so breast cropping has something to
  remove.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TEXTURE_ROWS = 512  # texture is synthesised at most this tall, then resized: cheap at any output size
# malignant conspicuity = U(0, 1) ** power; below 1 obvious cancers are the common case. Measured (demo, seed 0):
# power 0.5 -> val AUC 0.93, test 0.985; power 1.5 -> val 0.74. 0.5 is the measured one (the learning test
# reaches val AUC 0.97 with it); the 0.85-0.97 demo target lies between 0.5 and 1.5, not yet measured.
CONSPICUITY_POWER = 0.5
# lesion radius in pixels at 512 rows (scaled with the image): a mass of radius 14-28 px is 2.7-5.5 % of the
# film's height, about a 1-2.5 cm mass on a 24 cm film (real CBIS-DDSM masses are mostly 1-3 cm), and stays 5-10 px
# in the demo's 160 px whole-breast input, where its outline and spicules can still be seen
MASS_RADIUS = (14.0, 28.0)
CALC_RADIUS = (12.0, 22.0)
GRAIN = 0.018  # amplitude of the fine quantum-noise-like grain (intensity units of [0, 1])


@dataclass(frozen=True)
class LesionSpec:
    """One finding to draw: `kind` is "mass" or "calc"; `shape_seed` fixes its shape in CC and MLO views."""

    kind: str
    malignant: bool
    shape_seed: int


@dataclass(frozen=True)
class Phantom:
    """A rendered mammogram: the uint16 image, one uint8 0/255 mask per lesion, and the breast mask."""

    image: np.ndarray
    lesion_masks: list[np.ndarray]
    breast: np.ndarray


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float, stretch: float = 1.0
) -> np.ndarray:
    """Unit-variance Gaussian-filtered white noise; `stretch` > 1 elongates it along the columns.

    Large sigmas are filtered on a coarser grid (about 2 px per sigma) and resized up: same look, far cheaper.
    """
    f = max(1.0, sigma / 2.0)
    small = (max(4, round(shape[0] / f)), max(4, round(shape[1] / f)))
    noise = rng.standard_normal(small).astype(np.float32)
    out = cv2.GaussianBlur(
        noise, (0, 0), sigmaX=sigma / f * stretch, sigmaY=sigma / f, borderType=cv2.BORDER_REFLECT
    )
    if small != shape:
        out = cv2.resize(out, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return out / max(float(out.std()), 1e-6)


def breast_geometry(
    shape: tuple[int, int], view: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Thickness map (0 outside, ~1 at the chest wall) and pectoral-muscle map; chest wall on the left."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    mlo = view.upper() == "MLO"
    cy = rows * (0.55 if mlo else 0.5) + rng.uniform(-0.04, 0.04) * rows
    a = rows * (0.47 if mlo else rng.uniform(0.36, 0.44))
    b = cols * rng.uniform(0.68, 0.86)
    shear = rng.uniform(0.10, 0.25) if mlo else rng.uniform(-0.05, 0.05)
    xs = x + (y - cy) * shear
    r2 = ((y - cy) / a) ** 2 + (np.maximum(xs, 0) / b) ** 2
    inside = (r2 < 1.0) & (x >= 0)
    thickness = np.where(inside, np.clip(1.0 - r2, 0.0, 1.0) ** 0.35, 0.0).astype(np.float32)
    pectoral = np.zeros(shape, np.float32)
    if mlo:
        depth, height = cols * rng.uniform(0.28, 0.40), rows * rng.uniform(0.40, 0.55)
        edge = depth * (1.0 - y / height) - x
        pectoral = np.clip(edge / (0.02 * cols), 0.0, 1.0) * (thickness > 0)
    return thickness, pectoral.astype(np.float32)


def tissue(shape: tuple[int, int], density: int, rng: np.random.Generator) -> np.ndarray:
    """Fibroglandular fraction in [0, 1]: multi-scale filtered noise, denser for BI-RADS density 3-4."""
    rows, cols = shape
    f = min(1.0, TEXTURE_ROWS / rows)
    small = (max(8, round(rows * f)), max(8, round(cols * f)))
    h = small[0]
    n = (
        0.5 * _smooth_noise(rng, small, h * 0.006, 2.5)
        + 0.8 * _smooth_noise(rng, small, h * 0.018, 2.0)
        + 1.0 * _smooth_noise(rng, small, h * 0.05, 1.5)
    )
    n /= max(float(n.std()), 1e-6)
    bias = {1: -1.1, 2: -0.45, 3: 0.15, 4: 0.75}.get(int(density), 0.0)
    frac = 1.0 / (1.0 + np.exp(-1.4 * (n + bias)))
    if small != shape:
        frac = cv2.resize(frac, (cols, rows), interpolation=cv2.INTER_CUBIC)
    return np.clip(frac, 0.0, 1.0).astype(np.float32)


def _polar(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance and angle from the centre of a size x size patch."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.hypot(y - c, x - c), np.arctan2(y - c, x - c)


def mass_patch(
    radius: float, malignant: bool, rng: np.random.Generator, conspicuity: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A mass on a square patch: (density added in [0, 1], bool outline mask). Centre = patch centre.

    `conspicuity` (malignant only) scales how visible the lobulation and spicules are; the mask keeps them.
    """
    size = int(np.ceil(radius * 6.4)) | 1
    dist, theta = _polar(size)
    if malignant:
        bumps = np.zeros_like(theta)
        for k in range(2, 8):
            bumps += rng.uniform(0.05, 0.16) / np.sqrt(k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        rr = dist / (radius * (1.0 + bumps))
        core = rr < 1.0
        seen = dist / (radius * (1.0 + conspicuity * bumps))  # the outline as it shows: round when subtle
        dome = np.clip(1.0 - seen, 0.0, 1.0) ** (0.25 + 0.05 * conspicuity)  # benign's profile when subtle
        dome = cv2.GaussianBlur(
            dome, (0, 0), max(0.5 + 0.1 * conspicuity, (0.04 + 0.06 * conspicuity) * radius)
        )
        spic = np.zeros((size, size), np.float32)
        c = (size - 1) / 2.0
        width = max(1, round(radius * 0.10))
        for angle in rng.uniform(0, 2 * np.pi, int(rng.integers(9, 17))):
            length = radius * rng.uniform(1.7, 3.0)
            end = (round(c + length * np.cos(angle)), round(c + length * np.sin(angle)))
            cv2.line(spic, (round(c), round(c)), end, 1.0, width, cv2.LINE_AA)
        taper = np.clip(1.15 - dist / (radius * 3.1), 0.0, 1.0)
        density = np.maximum(dome, 0.75 * conspicuity * spic * taper)
        mask = core | ((spic > 0.5) & (dist < radius * (1.0 + 0.6 * conspicuity)))  # spicules seen, outlined
    else:
        aspect, angle = rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        c = (size - 1) / 2.0
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) - c
        u = x * np.cos(angle) + y * np.sin(angle)
        v = -x * np.sin(angle) + y * np.cos(angle)
        rr = np.sqrt((u / radius) ** 2 + (v / (radius * aspect)) ** 2)
        mask = rr < 1.0
        density = np.clip(1.0 - rr, 0.0, 1.0) ** 0.25
        density = cv2.GaussianBlur(density, (0, 0), max(0.5, 0.04 * radius))
    return density.astype(np.float32), mask


def calc_patch(
    radius: float, malignant: bool, rng: np.random.Generator, scale: float, conspicuity: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A calcification cluster on a square patch: (density in [0, 1], bool mask of the cluster region).

    `conspicuity` (malignant only) moves the cluster from few, scattered dots (0) to many fine dots on a line (1).
    """
    size = int(np.ceil(radius * 3.0)) | 1
    c = (size - 1) / 2.0
    dots = np.zeros((size, size), np.float32)
    k = conspicuity
    n = int(rng.integers(round(3 + 11 * k), round(10 + 20 * k))) if malignant else int(rng.integers(3, 10))
    # malignant dots line up along a segment (linear/segmental); benign ones scatter in a round cluster
    axis = rng.uniform(0, np.pi)
    for _ in range(n):
        if malignant and rng.random() < 0.2 + 0.8 * k:  # subtle clusters scatter like benign ones
            t, off = rng.uniform(-1, 1) * radius, rng.normal(0, 0.25 + 0.35 * (1 - k)) * radius
            px, py = c + t * np.cos(axis) - off * np.sin(axis), c + t * np.sin(axis) + off * np.cos(axis)
            px, py = np.clip(px, 1, size - 2), np.clip(py, 1, size - 2)  # a wide scatter stays on the patch
            axes = (  # fine and elongated when conspicuous, coarse and round like benign dots when subtle
                max(1, round((k * rng.uniform(0.5, 1.6) + (1 - k) * rng.uniform(1.4, 2.6)) * scale)),
                max(1, round((k * rng.uniform(0.4, 0.9) + (1 - k) * rng.uniform(1.4, 2.6)) * scale)),
            )
            cv2.ellipse(
                dots, (int(px), int(py)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA
            )
            if rng.random() < 0.3 * k:
                a = axis + rng.normal(0, 0.5)
                length = rng.uniform(2.0, 5.0) * scale
                end = (int(px + length * np.cos(a)), int(py + length * np.sin(a)))
                cv2.line(dots, (int(px), int(py)), end, 0.8, max(1, round(0.5 * scale)), cv2.LINE_AA)
        else:
            rad = radius * np.sqrt(rng.uniform(0, 1)) * 0.8
            a = rng.uniform(0, 2 * np.pi)
            px, py = c + rad * np.cos(a), c + rad * np.sin(a)
            r_dot = max(1, round(rng.uniform(1.4, 2.6) * scale))
            cv2.circle(dots, (int(px), int(py)), r_dot, 1.0, -1, cv2.LINE_AA)
    density = cv2.GaussianBlur(dots, (0, 0), max(0.4, 0.35 * scale))
    density /= max(float(density.max()), 1e-6)
    region = cv2.dilate(
        (dots > 0).astype(np.uint8),
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)),
        iterations=max(1, round(radius * 0.25)),
    )
    hull = cv2.convexHull(cv2.findNonZero(region))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return density.astype(np.float32), mask.astype(bool)


def _paste(canvas: np.ndarray, patch: np.ndarray, cy: int, cx: int, op=np.add) -> None:
    """Combine `patch` into `canvas` centred at (cy, cx), clipped to the canvas."""
    h, w = patch.shape
    y0, x0 = cy - h // 2, cx - w // 2
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(canvas.shape[0], y0 + h), min(canvas.shape[1], x0 + w)
    if ye <= ys or xe <= xs:
        return
    region = canvas[ys:ye, xs:xe]
    canvas[ys:ye, xs:xe] = op(region, patch[ys - y0 : ye - y0, xs - x0 : xe - x0])


def _lesion_centres(
    thickness: np.ndarray, pectoral: np.ndarray, n: int, spacing: float, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Centres well inside the breast, off the pectoral muscle, `spacing` apart when possible."""
    ys, xs = np.nonzero((thickness > 0.62) & (pectoral < 0.01))
    if ys.size == 0:
        ys, xs = np.nonzero(thickness > 0)
    centres: list[tuple[int, int]] = []
    for _ in range(n):
        for attempt in range(30):
            i = int(rng.integers(ys.size))
            p = (int(ys[i]), int(xs[i]))
            if all(np.hypot(p[0] - q[0], p[1] - q[1]) >= spacing for q in centres) or attempt == 29:
                centres.append(p)
                break
    return centres


def _draw_marker(img: np.ndarray, breast_on_left: bool, rng: np.random.Generator, text: str) -> None:
    """A bright film label with dark text in a top or bottom corner on the side away from the chest wall."""
    rows, cols = img.shape
    h = int(rows * 0.05)
    scale = h / 34.0
    thick = max(1, round(scale * 2))
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    w = tw + h // 2
    margin_y, margin_x = int(rows * 0.03), int(cols * 0.04)
    y0 = margin_y if rng.random() < 0.5 else rows - margin_y - h
    x0 = cols - margin_x - w if breast_on_left else margin_x
    label = np.full((h, w), 235, np.uint8)
    cv2.putText(label, text, (h // 4, int(0.75 * h)), cv2.FONT_HERSHEY_SIMPLEX, scale, 64, thick, cv2.LINE_AA)
    img[y0 : y0 + h, x0 : x0 + w] = label / 255.0


def render(
    shape: tuple[int, int],
    side: str,
    view: str,
    density: int,
    lesions: list[LesionSpec],
    rng: np.random.Generator,
) -> Phantom:
    """Render one mammogram of `shape` (rows, cols) with its lesions; masks are uint8 0/255 at full size."""
    rows, _cols = shape
    scale = rows / 512.0
    thickness, pectoral = breast_geometry(shape, view, rng)
    frac = tissue(shape, density, rng)
    breast = thickness > 0
    img = thickness * (0.30 + 0.28 * frac) + 0.30 * pectoral * thickness
    skin = (thickness > 0) & (thickness < 0.30)
    img[skin] += 0.05
    lesion_layer = np.zeros(shape, np.float32)
    masks: list[np.ndarray] = []
    drawn = []
    for spec in lesions:
        lrng = np.random.default_rng(spec.shape_seed)
        drawn.append(
            (
                spec,
                lrng,
                lrng.uniform(*(MASS_RADIUS if spec.kind == "mass" else CALC_RADIUS)) * scale,
            )
        )
    spacing = 2.6 * max((r for _, _, r in drawn), default=1.0)
    centres = _lesion_centres(thickness, pectoral, len(lesions), spacing, rng)
    for (spec, lrng, radius), (cy, cx) in zip(drawn, centres, strict=False):
        c = lrng.uniform(0.0, 1.0) ** CONSPICUITY_POWER if spec.malignant else 0.0
        if spec.kind == "mass":
            dens, mask = mass_patch(radius, spec.malignant, lrng, c)
            amp = lrng.uniform(0.14, 0.19) + (0.06 * c if spec.malignant else 0.0)
        else:
            dens, mask = calc_patch(radius, spec.malignant, lrng, scale, c)
            amp = lrng.uniform(0.30, 0.40)
        _paste(lesion_layer, amp * dens, cy, cx, np.maximum)
        full = np.zeros(shape, np.uint8)
        _paste(full, mask.astype(np.uint8) * 255, cy, cx, np.maximum)
        masks.append(np.where(breast, full, 0).astype(np.uint8))
    img = img + lesion_layer * breast
    grain = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 0.7 * max(1.0, scale))
    img = 0.03 + img + GRAIN * grain / max(float(grain.std()), 1e-6)
    if side.upper() == "RIGHT":
        img, thickness, breast = img[:, ::-1].copy(), thickness[:, ::-1], breast[:, ::-1].copy()
        masks = [m[:, ::-1].copy() for m in masks]
    _draw_marker(img, side.upper() != "RIGHT", rng, f"{side.upper()[0]} {view.upper()}")
    out = np.rint(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return Phantom(image=out, lesion_masks=masks, breast=breast)
