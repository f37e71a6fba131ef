"""`percae probe`: the study's evaluation of any embeddings (`probe.probe_files`)."""

from __future__ import annotations

import click

from .options import given, parse_seeds


@click.command()
@click.option(
    "--embeddings",
    "embedding_files",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A .npy (N, z) array, or a folder `percae encode --out DIR` wrote (its targets and "
    "groups come with it); repeat to compare several embeddings of the same images (each "
    "against the first, or models named as a study's against their pixel-wise twin).",
)
@click.option(
    "--targets",
    default=None,
    type=click.Path(dir_okay=False),
    help="A .npy array: (N,) or (N, D) numbers, or (N,) integer classes with --task "
    "classification [the --embeddings folders' own].",
)
@click.option(
    "--groups",
    default=None,
    type=click.Path(dir_okay=False),
    help="A .npy (N,) array of group ids (e.g. rollouts): no group on two sides of a split "
    "[the --embeddings folders' own, else each image its own group].",
)
@click.option(
    "--task",
    type=click.Choice(["position", "classification", "regression"]),
    default=None,
    help="position (any numbers: the mean Euclidean distance; regression is its earlier name) "
    "or classification [the --embeddings folders', else position].",
)
@click.option(
    "--test-embeddings",
    "test_files",
    multiple=True,
    type=click.Path(exists=True),
    help="A separate test set, one per --embeddings in the same order (default: 20% split off).",
)
@click.option("--test-targets", default=None, type=click.Path(dir_okay=False))
@click.option(
    "--seeds",
    default="3",
    show_default=True,
    help="Predictor seeds: a count or a comma-separated list.",
)
@click.option(
    "--split-seed", default=0, show_default=True, type=int, help="The seed of the splits."
)
@click.option("--predictor-epochs", "epochs", default=None, type=int, help="[500]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N [auto].")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for probe.json and tables.md (an interrupted probe there resumes).",
)
@click.option("--replace", is_flag=True, help="Redo a finished probe in --out.")
@click.option("--progress/--no-progress", default=True)
def probe(
    embedding_files,
    targets,
    groups,
    task,
    test_files,
    test_targets,
    seeds,
    split_seed,
    out,
    replace,
    progress,
    **settings,
):
    """Evaluate any embeddings as the paper does (predictor grid, baseline, intervals)."""
    from ..predictors import PredictorConfig
    from ..probe import probe_files, probe_tables

    result = probe_files(
        list(embedding_files),
        out,
        targets=targets,
        groups=groups,
        test_embeddings=list(test_files),
        test_targets=test_targets,
        task=task,
        seeds=parse_seeds(seeds),
        split_seed=split_seed,
        # The options not given are None: PredictorConfig's defaults.
        config=PredictorConfig(**given(settings)),
        replace_finished=replace,
        progress=progress,
    )
    click.echo(probe_tables(result))
    click.echo(f"results: {out}/probe.json, tables.md")
