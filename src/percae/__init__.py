"""percae: image autoencoders with pixel-wise or perceptual loss, and the study that
measures how useful their embeddings are for downstream prediction.

Importing percae builds no network and changes no environment; the public API lives
in the modules, in the order data flows: data, model, loss, training, embeddings,
predictors, study, report, cli.
"""

__version__ = "0.1.0"
