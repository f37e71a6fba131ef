"""A study's models as variants: names, what they train, what they are compared with."""

from __future__ import annotations

import pytest

from percae.config import ConfigError
from percae.study.config import StudyConfig
from percae.variants import comparisons, parse_variant, parse_variants, table_order


@pytest.mark.parametrize(
    "name, kind, loss, network",
    [
        ("AE", "ae", "pixel", None),
        ("VAE", "vae", "pixel", None),
        ("P.AE", "ae", "perceptual", None),
        ("P.VAE", "vae", "perceptual", None),
        ("AE[ssim]", "ae", "ssim", None),
        ("VAE[ms-ssim]", "vae", "ms-ssim", None),
        ("AE[lap1]", "ae", "lap1", None),
        ("P.AE[alexnet-random:relu3]", "ae", "perceptual", "alexnet-random:relu3"),
        ("P.VAE[efficientnet-lite0:stage4]", "vae", "perceptual", "efficientnet-lite0:stage4"),
        ("P.AE[alexnet:relu1+relu2+relu3]", "ae", "perceptual", "alexnet:relu1+relu2+relu3"),
        ("P.AE[torchvision:vgg11:relu2_1]", "ae", "perceptual", "torchvision:vgg11:relu2_1"),
    ],
)
def test_a_name_says_the_kind_the_loss_and_the_network(name, kind, loss, network):
    v = parse_variant(name)
    assert (v.kind, v.loss, v.network) == (kind, loss, network)
    assert v.twin == ("VAE" if kind == "vae" else "AE")


@pytest.mark.parametrize(
    "name, message",
    [
        ("AE[foo]", "unknown loss 'foo'.*ssim, ms-ssim, lap1"),
        ("AE[alexnet]", "a perceptual loss is P.AE\\[NET\\]"),
        ("AE[perceptual]", "a perceptual loss is P.AE\\[NET\\]"),
        ("AE[pixel]", "AE alone is pixel MSE"),
        ("P.AE[alexnet:relu9]", "alexnet has no layer 'relu9'; choose from relu1, relu2"),
        ("P.AE[efficientnet-lite3]", "unknown perceptual network 'efficientnet-lite3'"),
        ("P.AE[alexnet:relu2+relu2]", "names a layer twice"),
        ("DAE", "is not a model"),
        ("AE[ssim", "is not a model"),
        ("P.AE[alexnet random]", "cannot name a run folder"),
    ],
)
def test_a_name_that_is_no_model_is_refused_with_the_forms_a_name_takes(name, message):
    with pytest.raises(ConfigError, match=message):
        parse_variant(name)


def test_two_names_of_one_model_are_refused():
    with pytest.raises(ConfigError, match="AE is named twice"):
        parse_variants(["AE", "AE"], "alexnet-random")
    # The study's network at its default layer, named: the same model as P.AE.
    with pytest.raises(
        ConfigError, match=r"P.AE\[alexnet-random:relu2\] is the same model as P.AE"
    ):
        parse_variants(["P.AE", "P.AE[alexnet-random:relu2]"], "alexnet-random")
    with pytest.raises(ConfigError, match="the same model as"):
        parse_variants(
            ["P.AE[efficientnet-lite0-s8]", "P.AE[efficientnet-lite0:block3]"], "alexnet"
        )
    # With another study network, they differ.
    assert len(parse_variants(["P.AE", "P.AE[alexnet-random:relu2]"], "alexnet")) == 2


def test_every_non_pixel_model_is_compared_with_the_pixel_model_of_its_kind():
    names = ["P.AE[alexnet-random:relu3]", "VAE[ssim]", "AE", "P.VAE", "VAE", "AE[lap1]", "P.AE"]
    assert table_order(names) == [
        "AE",
        "VAE",
        "P.AE",
        "P.VAE",
        "P.AE[alexnet-random:relu3]",
        "VAE[ssim]",
        "AE[lap1]",
    ]
    assert comparisons(names) == [
        ("P.AE", "AE"),
        ("P.VAE", "VAE"),
        ("P.AE[alexnet-random:relu3]", "AE"),
        ("VAE[ssim]", "VAE"),
        ("AE[lap1]", "AE"),
    ]
    assert comparisons(["VAE[ssim]", "AE"]) == []  # no VAE to compare with


def test_a_variant_trains_with_its_own_loss_and_network_and_the_paper_models_as_before():
    study = StudyConfig(
        models=("AE", "P.AE", "AE[ssim]", "P.VAE[alexnet-random:relu4]"),
        train=StudyConfig().train.__class__(perceptual_net="alexnet", perceptual_weights="a.pth"),
    )
    study.validate()
    ae, pae = study.train_config("AE", 3), study.train_config("P.AE", 3)
    assert (ae.loss, ae.seed, ae.perceptual_net) == ("pixel", 3, "alexnet")
    assert (pae.loss, pae.perceptual_net, pae.perceptual_weights) == (
        "perceptual",
        "alexnet",
        "a.pth",
    )
    assert study.train_config("AE[ssim]", 0).loss == "ssim"
    own = study.train_config("P.VAE[alexnet-random:relu4]", 0)
    # Another network: the study's weights file (AlexNet's) is not its.
    assert (own.loss, own.perceptual_net, own.perceptual_weights) == (
        "perceptual",
        "alexnet-random:relu4",
        None,
    )
    assert study.autoencoder_config("P.VAE[alexnet-random:relu4]", 8, 64).kind == "vae"
    assert study.networks() == {"alexnet": "a.pth", "alexnet-random:relu4": None}
    # Another layer of the study's network takes its weights.
    same = StudyConfig(models=("P.AE[alexnet:relu4]",), train=study.train)
    assert same.train_config("P.AE[alexnet:relu4]", 0).perceptual_weights == "a.pth"
    assert same.perceptual_net is None  # no model uses the study's own network


def test_a_study_of_a_variant_named_twice_is_refused():
    with pytest.raises(ConfigError, match="named twice"):
        StudyConfig(models=("AE", "AE[ssim]", "AE[ssim]")).validate()
    with pytest.raises(ConfigError, match="at least one model"):
        StudyConfig(models=()).validate()
