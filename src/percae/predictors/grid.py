"""The paper's predictor grid: each predictor's layout and activations (`PredictorSpec`,
checked when made), the 38 of them, the activations themselves (the one place each is
written: forward in place and its gradient from its output), and the grid's settings."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import torch

from ..config import MAX_SEED, ConfigError, JsonConfig, setting
from ..stopping import early_stopping_patience

# Each hidden activation: applied in place, and the gradient through it multiplied in place
# into `d` from its output `a` (ReLU passes it where a > 0, the sigmoid scales it by a (1 - a)).
HIDDEN_ACTIVATIONS = {
    "relu": (torch.Tensor.relu_, lambda d, a: d.mul_(a > 0)),
    "sigmoid": (torch.Tensor.sigmoid_, lambda d, a: d.mul_(1 - a).mul_(a)),
}
OUTPUT_ACTIVATIONS = ("none", "softmax")
HIDDEN_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class PredictorSpec:
    hidden: tuple[int, ...] = ()
    hidden_activation: str | None = None
    output_activation: str = "none"

    def __post_init__(self):
        if self.hidden and self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ConfigError(
                f"predictor {self.hidden}: hidden activation {self.hidden_activation!r}; choose "
                f"one of {', '.join(HIDDEN_ACTIVATIONS)}"
            )
        if not self.hidden and self.hidden_activation is not None:
            raise ConfigError("a linear predictor has no hidden activation")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"predictor output activation {self.output_activation!r}; choose one of "
                f"{', '.join(OUTPUT_ACTIVATIONS)}"
            )
        if not all(isinstance(h, int) and h >= 1 for h in self.hidden):
            raise ConfigError(
                f"predictor hidden sizes must be positive integers, got {self.hidden}"
            )

    @property
    def kind(self) -> str:
        return "mlp" if self.hidden else "linear"

    @property
    def name(self) -> str:
        parts = [self.kind, *map(str, self.hidden)]
        if self.hidden:
            parts.append(self.hidden_activation or "")
        parts.append(self.output_activation)
        return "-".join(parts)

    def to_dict(self) -> dict:
        return {
            "hidden": list(self.hidden),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PredictorSpec":
        return cls(tuple(d["hidden"]), d["hidden_activation"], d["output_activation"])


def predictor_grid() -> list[PredictorSpec]:
    """The paper's search space: 1 or 2 hidden layers of 32/64/128 units (the second no
    larger than the first) x ReLU/Sigmoid x no/Softmax output = 36 MLPs, plus linear
    regressors with no/Softmax output = 2; 38 predictors in all."""
    layouts = [(h,) for h in HIDDEN_SIZES] + [
        (a, b) for a in HIDDEN_SIZES for b in HIDDEN_SIZES if b <= a
    ]
    mlps = [
        PredictorSpec(h, act, out)
        for h, act, out in product(layouts, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS)
    ]
    linear = [PredictorSpec((), None, out) for out in OUTPUT_ACTIVATIONS]
    return mlps + linear


@dataclass
class PredictorConfig(JsonConfig):
    epochs: int = setting(500, option="--predictor-epochs", min=1)
    batch_size: int = setting(512, option="predictor batch size", min=1)
    lr: float = setting(1e-3, option="predictor learning rate", min=0)
    patience: int | None = setting(
        None, option="predictor patience", min=1
    )  # None: max(10, epochs // 20)
    seed: int = setting(0, option="predictor seed", min=0, max=MAX_SEED)
    device: str = "auto"

    @property
    def effective_patience(self) -> int:
        return early_stopping_patience(self.epochs, self.patience)
