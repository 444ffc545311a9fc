"""Training: augmentation, samplers, config, the loop (single process or DDP under torchrun).

Public functions (imported on first use, so `import mammo.train` loads no torch): `train`, `resolve_config`.
"""

from typing import TYPE_CHECKING

from mammo import lazy_exports

if TYPE_CHECKING:
    from mammo.train.config import TrainConfig, resolve_config
    from mammo.train.loop import train

EXPORTS = {
    "train": "mammo.train.loop",
    "resolve_config": "mammo.train.config",
    "TrainConfig": "mammo.train.config",
}
__all__ = ["TrainConfig", "resolve_config", "train"]
__getattr__ = lazy_exports(__name__, EXPORTS)
