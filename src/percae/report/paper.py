"""The paper's numbers (Tables II-VIII), by dataset, predictor kind, z and model: position
error in pixels, accuracy as a fraction."""

from __future__ import annotations

from ..variants import PAPER_MODELS


def _rows(rows: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {z: dict(zip(PAPER_MODELS, values)) for z, values in rows.items()}


PAPER = {
    "lunarlander": {
        "mlp": _rows(
            {
                "32": [13.44, 12.70, 2.11, 1.28],
                "64": [13.28, 13.22, 1.60, 1.15],
                "128": [13.31, 13.31, 1.44, 1.15],
                "256": [13.22, 13.28, 1.44, 1.28],
                "any": [13.22, 12.70, 1.44, 1.15],
            }
        ),
        "linear": _rows(
            {
                "32": [13.73, 12.67, 7.23, 7.46],
                "64": [13.60, 12.99, 6.85, 5.50],
                "128": [14.18, 12.96, 6.72, 5.54],
                "256": [15.17, 13.38, 6.40, 5.18],
                "any": [13.60, 12.67, 6.40, 5.18],
            }
        ),
        "reconstruction_relative": dict(zip(PAPER_MODELS, [0.93, 0.77, 1.00, 0.73])),
        "tables": ("II", "V"),
    },
    "stl10": {
        "mlp": _rows(
            {
                "64": [0.385, 0.419, 0.614, 0.634],
                "128": [0.390, 0.424, 0.626, 0.623],
                "256": [0.415, 0.389, 0.634, 0.648],
                "512": [0.450, 0.392, 0.633, 0.644],
                "any": [0.450, 0.424, 0.634, 0.648],
            }
        ),
        "linear": _rows(
            {
                "64": [0.346, 0.368, 0.563, 0.581],
                "128": [0.354, 0.397, 0.597, 0.574],
                "256": [0.402, 0.436, 0.595, 0.637],
                "512": [0.444, 0.459, 0.601, 0.649],
                "any": [0.444, 0.459, 0.601, 0.649],
            }
        ),
        "reconstruction_relative": dict(zip(PAPER_MODELS, [1.00, 0.92, 0.60, 0.44])),
        "tables": ("III", "VI"),
    },
    "svhn": {
        "mlp": _rows(
            {
                "32": [0.765, 0.768, 0.770, 0.696],
                "64": [0.815, 0.818, 0.822, 0.768],
                "128": [0.819, 0.827, 0.840, 0.812],
                "any": [0.819, 0.827, 0.840, 0.812],
            }
        ),
        "linear": _rows(
            {
                "32": [0.255, 0.320, 0.616, 0.589],
                "64": [0.248, 0.412, 0.672, 0.663],
                "128": [0.293, 0.475, 0.706, 0.712],
                "any": [0.293, 0.475, 0.706, 0.712],
            }
        ),
        "reconstruction_relative": dict(zip(PAPER_MODELS, [1.00, 0.97, 0.75, 0.57])),
        "tables": ("IV", "VII"),
    },
}
