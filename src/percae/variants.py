"""A model of a study is a variant: an autoencoder kind (AE, VAE) and a reconstruction loss, named
so that the command line, study_config.json, run folders, tables and figures all use one name:

    AE, VAE                 pixel-wise MSE (the paper's)
    P.AE, P.VAE             the perceptual loss with the study's network (--perceptual-net)
    AE[LOSS], VAE[LOSS]     a loss without a network: ssim, ms-ssim, lap1
    P.AE[NET], P.VAE[NET]   the perceptual loss with its own network: NET, NET:LAYER or
                            NET:LAYER+LAYER (e.g. P.AE[alexnet-random:relu3],
                            P.AE[efficientnet-lite0:stage4], P.AE[alexnet:relu1+relu2+relu3])

Every variant but a pixel-wise one is compared with the pixel-wise variant of its kind (its
twin, AE or VAE), seed by seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import ConfigError
from .loss import LOSSES
from .perceptual_networks import PerceptualNetworkUnavailable, canonical_net, layer_depth

# The paper's four models, in its column order.
PAPER_MODELS = ("AE", "VAE", "P.AE", "P.VAE")
KINDS = {"AE": "ae", "VAE": "vae"}
_NAME = re.compile(r"(P\.)?(AE|VAE)(?:\[([^\[\]]+)\])?")
# What a run folder's name may hold (a variant's name is part of it): no separator, no space.
_SAFE = re.compile(r"[A-Za-z0-9._+:@\-\[\]]+")
MAX_NAME = 100


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "ae" or "vae"
    loss: str  # a key of loss.LOSSES
    network: str | None = None  # a perceptual variant's own network; None: the study's

    @property
    def twin(self) -> str:
        """The pixel-wise variant of this kind, which this one is compared with."""
        return "VAE" if self.kind == "vae" else "AE"

    @property
    def pixel(self) -> bool:
        return self.loss == "pixel"

    @property
    def uses_network(self) -> bool:
        return LOSSES[self.loss].uses_network

    def network_of(self, study_network: str) -> str | None:
        """The network this variant's loss uses (the study's where it names none)."""
        return (self.network or study_network) if self.uses_network else None

    def key(self, study_network: str) -> tuple:
        """What this variant trains: two names of one key are the same model."""
        net = self.network_of(study_network)
        return self.kind, self.loss, canonical_net(net) if net else None

    def family(self, study_network: str) -> tuple[str, int | None]:
        """(what its loss is, a depth where it is a network's layer): a figure's line and x."""
        net = self.network_of(study_network)
        if net is None:
            return self.loss, None
        return layer_depth(net)


def variant_help() -> str:
    weight_free = [n for n, cls in LOSSES.items() if not cls.uses_network and n != "pixel"]
    return (
        "AE, VAE (pixel MSE), P.AE, P.VAE (the study's perceptual network), "
        f"AE[LOSS] or VAE[LOSS] with LOSS one of {', '.join(weight_free)}, and P.AE[NET] or "
        "P.VAE[NET] with NET a perceptual network (NET, NET:LAYER or NET:LAYER+LAYER)"
    )


def parse_variant(name: str) -> Variant:
    """The variant a name denotes; a name that denotes none is refused in one line listing the
    forms a name takes."""
    if not isinstance(name, str):
        raise ConfigError(f"--models: a model is a name, got {name!r}")
    match = _NAME.fullmatch(name)
    if not match:
        raise ConfigError(f"--models: {name!r} is not a model; models are {variant_help()}")
    if len(name) > MAX_NAME or not _SAFE.fullmatch(name):
        raise ConfigError(
            f"--models: {name!r} cannot name a run folder (at most {MAX_NAME} characters of "
            "letters, digits and . _ + : @ - [ ])"
        )
    perceptual, base, inner = match.groups()
    kind = KINDS[base]
    if inner is None:
        return Variant(name, kind, "perceptual" if perceptual else "pixel")
    if perceptual:
        try:
            canonical_net(inner)
        except PerceptualNetworkUnavailable as e:
            raise ConfigError(f"--models {name}: {e}") from None
        return Variant(name, kind, "perceptual", inner)
    if inner not in LOSSES or LOSSES[inner].uses_network or inner == "pixel":
        hint = (
            f"; a perceptual loss is P.{base}[NET]"
            if inner == "perceptual" or _is_network(inner)
            else f"; {base} alone is pixel MSE"
            if inner == "pixel"
            else ""
        )
        raise ConfigError(
            f"--models {name}: unknown loss {inner!r}{hint}; models are {variant_help()}"
        )
    return Variant(name, kind, inner)


def _is_network(text: str) -> bool:
    try:
        canonical_net(text)
    except PerceptualNetworkUnavailable:
        return False
    return True


def parse_variants(names, study_network: str) -> list[Variant]:
    """Each name's variant; two names of one model (P.AE and P.AE[NET] with the study's NET,
    say) are refused."""
    variants = [parse_variant(n) for n in names]
    seen: dict[tuple, str] = {}
    for v in variants:
        key = v.key(study_network)
        if key in seen:
            same = "named twice" if seen[key] == v.name else f"the same model as {seen[key]}"
            raise ConfigError(f"--models: {v.name} is {same}; give each model once")
        seen[key] = v.name
    return variants


def table_order(names) -> list[str]:
    """The paper's models in its order, then the others as given."""
    return [m for m in PAPER_MODELS if m in names] + [m for m in names if m not in PAPER_MODELS]


def comparisons(names) -> list[tuple[str, str]]:
    """(variant, its pixel-wise twin) for every non-pixel variant among `names` whose twin is
    among them too, in table order."""
    pairs = []
    for name in table_order(names):
        v = parse_variant(name)
        if not v.pixel and v.twin in names:
            pairs.append((name, v.twin))
    return pairs
