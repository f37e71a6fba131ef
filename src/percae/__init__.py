"""percae: image autoencoders with pixel-wise or perceptual loss, and the study that
measures how useful their embeddings are for downstream prediction.

Importing percae builds no network and changes no environment; the public API lives
in the modules, in the order data flows: config, layout, data, device, model, loss,
feature_cache, training, embeddings, predictors, study, report, cli (docs/architecture.md).
"""

__version__ = "0.1.0"
