"""The paper's evaluation for any embeddings (`percae probe`): leak-free splits by group, the
38-predictor grid with selection on validation loss, the best MLP and linear predictor
tested once, the trivial baseline, 95% intervals over predictor seeds, and several embeddings
of the same images compared by their paired ratio, as a study compares its models.

As strict as a study: every setting and array is checked before the first file (and what the
grid would take of memory), the probe's settings are written first so that an interrupted
probe resumes with the same command, a finished one is replaced only when asked, and its
folder is held while it runs. The splits are those a study makes of its predictor part
(`data.split_by_group`, 20% for validation), so a study's saved embeddings give that study's
numbers exactly; the tasks and metrics are the study's ("position": mean Euclidean distance,
in the targets' units; "classification": accuracy)."""

from .checks import METRICS, TASKS
from .evaluate import probe_embeddings
from .inputs import probe_files, read_embeddings
from .tables import probe_tables

__all__ = ["METRICS", "TASKS", "probe_embeddings", "probe_files", "probe_tables", "read_embeddings"]
