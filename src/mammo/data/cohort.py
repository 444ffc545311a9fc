"""The synthetic cohort, planned before anything is written: women, breasts, findings and images.

Which women are in which (abnormality type, split), which breasts carry a malignant finding (about 50/50 per type
and split), each finding's descriptors from the real CSV vocabulary, and the few quirk-bearing cases every
download must contain (several findings on one image, a mixed-pathology image, BENIGN_WITHOUT_CALLBACK, `N/A`
descriptors, a woman in both mass-train and calc-test). Pure numpy; `mammo.data.synth` writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZES = {"small": (512, 320, 16), "full": (3328, 2048, 64)}  # rows, cols, jitter step (x -2..2)
FOLDER_PREFIX = {
    ("mass", "train"): "Mass-Training",
    ("mass", "test"): "Mass-Test",
    ("calc", "train"): "Calc-Training",
    ("calc", "test"): "Calc-Test",
}
# descriptor vocabularies (values seen in the real CSVs), by pathology
MASS_SHAPE = {
    True: ["IRREGULAR", "IRREGULAR-ARCHITECTURAL_DISTORTION", "LOBULATED"],
    False: ["OVAL", "ROUND", "LOBULATED"],
}
MASS_MARGINS = {
    True: ["SPICULATED", "ILL_DEFINED", "ILL_DEFINED-SPICULATED"],
    False: ["CIRCUMSCRIBED", "OBSCURED"],
}
CALC_TYPE = {
    True: ["PLEOMORPHIC", "FINE_LINEAR_BRANCHING", "AMORPHOUS"],
    False: ["ROUND_AND_REGULAR-LUCENT_CENTER", "COARSE", "PUNCTATE", "VASCULAR"],
}
CALC_DIST = {
    True: ["CLUSTERED", "LINEAR", "SEGMENTAL"],
    False: ["CLUSTERED", "REGIONAL", "DIFFUSELY_SCATTERED"],
}


@dataclass
class Finding:
    """One abnormality of one breast (shared by its CC and MLO images)."""

    abn_id: int
    pathology: str
    descriptors: tuple[str, str]
    assessment: int
    subtlety: int
    shape_seed: int

    @property
    def malignant(self) -> bool:
        return self.pathology == "MALIGNANT"


@dataclass
class PlannedImage:
    """One full mammogram to write, with its findings."""

    patient_id: str
    abn_type: str
    split: str
    side: str
    view: str
    density: int
    findings: list[Finding]
    seed: int
    shape: tuple[int, int]

    @property
    def folder(self) -> str:
        return f"{FOLDER_PREFIX[self.abn_type, self.split]}_{self.patient_id}_{self.side}_{self.view}"


def groups_by_type(n_women: int, rng: np.random.Generator) -> dict[tuple[str, str], list[int]]:
    """Women (indices) per (abnormality type, split): types ~55/45, split by woman ~70/30 within each type."""
    order = rng.permutation(n_women)
    n_mass = min(n_women - 1, max(1, round(n_women * 0.55)))
    out: dict[tuple[str, str], list[int]] = {}
    for kind, members in (("mass", order[:n_mass]), ("calc", order[n_mass:])):
        n_test = max(1, round(len(members) * 0.3)) if len(members) > 1 else 0
        out[kind, "train"] = sorted(members[n_test:].tolist())
        out[kind, "test"] = sorted(members[:n_test].tolist())
    cross = out["mass", "train"][0]
    out["calc", "test"] = sorted(out["calc", "test"] + [cross])
    return out


def descriptors(kind: str, malignant: bool, rng: np.random.Generator) -> tuple[str, str]:
    """Shape and margins (mass) or type and distribution (calc), drawn from the real vocabulary."""
    first, second = (MASS_SHAPE, MASS_MARGINS) if kind == "mass" else (CALC_TYPE, CALC_DIST)
    return str(rng.choice(first[malignant])), str(rng.choice(second[malignant]))


def plan_cohort(n_women: int, size: str, seed: int) -> tuple[list[PlannedImage], str]:
    """The cohort without writing anything: every image with its findings, balanced per (type, split)."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(1, 2000), size=n_women, replace=False))
    pids = [f"P_{i:05d}" for i in ids]
    density = rng.integers(1, 5, n_women)
    groups = groups_by_type(n_women, rng)
    cross = pids[groups["mass", "train"][0]]
    rows, cols, step = SIZES[size]
    images: list[PlannedImage] = []
    state = {"multi": False, "mixed": False, "bwc": False, "na": set()}
    for (kind, split), women in groups.items():
        breasts = []
        for w in women:
            sides = ["LEFT", "RIGHT"] if rng.random() < 0.25 else [str(rng.choice(["LEFT", "RIGHT"]))]
            if pids[w] == cross and kind == "calc":
                sides = sides[:1]
            breasts += [(w, s) for s in sides]
        malignant = np.zeros(len(breasts), bool)
        malignant[rng.permutation(len(breasts))[: (len(breasts) + int(rng.integers(0, 2))) // 2]] = True
        for (w, side), mal in zip(breasts, malignant, strict=False):
            n_find = 2 if (not state["multi"] or rng.random() < 0.15) else 1
            findings = []
            for k in range(n_find):
                is_mal = bool(mal) if k == 0 or state["mixed"] else not mal
                state["mixed"] |= k > 0 and is_mal != bool(mal)
                benign_kind = (
                    "BENIGN_WITHOUT_CALLBACK" if (not state["bwc"] or rng.random() < 0.3) else "BENIGN"
                )
                pathology = "MALIGNANT" if is_mal else benign_kind
                state["bwc"] |= pathology == "BENIGN_WITHOUT_CALLBACK"
                desc = descriptors(kind, is_mal, rng)
                if (kind, split) not in state["na"]:
                    desc = (desc[0], "N/A")
                    state["na"].add((kind, split))
                assessment = (
                    int(rng.choice([4, 5]))
                    if is_mal
                    else int(rng.choice([2, 3, 4] if pathology == "BENIGN" else [2, 3]))
                )
                findings.append(
                    Finding(
                        k + 1, pathology, desc, assessment, int(rng.integers(1, 6)), int(rng.integers(2**31))
                    )
                )
            state["multi"] |= n_find > 1
            views = ["CC", "MLO"] if rng.random() < 0.9 else [str(rng.choice(["CC", "MLO"]))]
            for view in views:
                shape = (rows + step * int(rng.integers(-2, 3)), cols + step * int(rng.integers(-2, 3)))
                images.append(
                    PlannedImage(
                        pids[w],
                        kind,
                        split,
                        side,
                        view,
                        int(density[w]),
                        findings,
                        int(rng.integers(2**31)),
                        shape,
                    )
                )
    return images, cross
