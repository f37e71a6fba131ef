"""What the commands share of their options: an option not given is None (the setting's default
then holds), `--seeds`, the scale's type, and the perceptual network's options."""

from __future__ import annotations

import click

from ..config import ConfigError


def given(settings: dict) -> dict:
    """The options given: one not given is None, and leaves the config's default."""
    return {name: value for name, value in settings.items() if value is not None}


def parse_seeds(text: str, first: int = 0) -> tuple[int, ...]:
    """`--seeds`: a count N (seeds first, first+1, ..., first+N-1) or a comma-separated list."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--seeds takes a count (3) or comma-separated seeds (0,1,2), got {text!r}"
        ) from None
    if len(values) == 1:
        if values[0] < 1:
            raise ConfigError(f"--seeds needs a count of at least 1, got {values[0]}")
        return tuple(range(first, first + values[0]))
    return values


class ScaleType(click.ParamType):
    name = "NUMBER|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) or value == "auto":
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor auto", param, ctx)


def perceptual_options(f, part: str = ""):
    """The perceptual network's options, as `train` names them (TrainConfig's fields) or, with
    part "train__", as `reproduce` does (its study's training's)."""
    f = click.option(
        "--perceptual-scale",
        f"{part}perceptual_scale",
        default=None,
        type=ScaleType(),
        help="The factor of every loss but pixel MSE: a number (1: the paper's loss), or auto: "
        "the ratio of pixel MSE to the loss between training images, so that --kl-weight means "
        "the same for every loss and network.",
    )(f)
    f = click.option(
        "--perceptual-weights",
        f"{part}perceptual_weights",
        default=None,
        help="A torchvision-format state dict for the perceptual network (offline AlexNet), or "
        "'imagenet' for a torchvision:ARCH:LAYER trunk's ImageNet weights (downloaded).",
    )(f)
    f = click.option(
        "--perceptual-net",
        f"{part}perceptual_net",
        default=None,
        help="NET or NET:LAYER (several layers summed: NET:LAYER+LAYER). NET: alexnet (the "
        "paper's, ImageNet weights: cached, downloaded, or --perceptual-weights; the default but "
        "for the quick preset) or alexnet-random (the quick preset's), layers relu1-relu5 "
        "(default relu2); efficientnet-lite0, -lite1, -lite2 (ImageNet, offline), layers stem, "
        "blockN, stage1-stage7 (default block1); efficientnet-lite0-s8 (lite0:block3); or "
        "torchvision:ARCH:LAYER (e.g. torchvision:vgg16:relu2_2; random weights unless "
        "--perceptual-weights).",
    )(f)
    return f
