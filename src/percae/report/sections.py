"""The sections of tables.md beside the tables: the images of each split and the batch size,
Table VIII (reconstruction), and the training speed (the perceptual loss's overhead, said to be
a CPU's where it is)."""

from __future__ import annotations

from ..variants import table_order


def sizes_lines(sizes: dict | None, config: dict, metric: str) -> list[str]:
    """The images of each split (the test set's groups too), and the batch the autoencoders
    trained at with its rule where the study has one."""
    if not sizes:
        return []
    groups = "rollouts" if metric == "pixel_distance" else "groups"
    out = [
        "",
        f"Images: autoencoders {sizes['autoencoder_train']} / {sizes['autoencoder_val']} "
        f"training / validation, predictors {sizes['predictor_train']} / "
        f"{sizes['predictor_val']}, test {sizes['test']} in {sizes['test_groups']} {groups}.",
    ]
    rule = config.get("min_steps_per_epoch")
    batch = config["train"]["batch_size"]
    if rule:
        from ..study.config import StudyConfig

        used = StudyConfig.from_dict(config).batch_size_for(sizes["autoencoder_train"])
        out[-1] += (
            f" Batch size {used}: the largest power of two up to {batch} that gives at least "
            f"{rule} optimizer steps per epoch ({sizes['autoencoder_train'] // used} here)."
        )
    else:
        steps = sizes["autoencoder_train"] // batch
        out[-1] += f" Batch size {batch} ({steps} optimizer steps per epoch)."
    return out


def reconstruction_lines(summary: dict, paper: dict | None) -> list[str]:
    rel = summary.get("reconstruction_relative") or {}
    if not rel:
        return []
    models = table_order(list(rel))
    retrained = summary["config"]["retrain_epochs"] > 0
    when = (
        "after decoder retraining"
        if retrained
        else "as trained, without decoder retraining (--retrain-epochs 0)"
    )
    out = [
        "",
        f"## Table VIII analogue: reconstruction {when}, relative to the autoencoder with the "
        "lowest L1 error",
        "",
        "| | " + " | ".join(models) + " |",
        "|" + "---|" * (len(models) + 1),
        "| ours | " + " | ".join(f"{100 * rel[m]:.0f}%" for m in models) + " |",
        "| L1 error | "
        + " | ".join(f"{summary['reconstruction_l1'][m]:.4f}" for m in models)
        + " |",
    ]
    if paper:
        label = "paper" if retrained else "paper (after decoder retraining)"
        paper_rel = paper["reconstruction_relative"]
        out.append(
            f"| {label} | "
            + " | ".join(f"{100 * paper_rel[m]:.0f}%" if m in paper_rel else "–" for m in models)
            + " |"
        )
    return out


def _on_cpu(summary: dict) -> bool:
    devices = summary.get("training_devices") or []
    return bool(devices) and all(d.startswith("cpu") for d in devices)


def speed_lines(summary: dict, variants: bool) -> list[str]:
    out = []
    if summary.get("perceptual_overhead") is not None:
        out += [
            "",
            "Training-time overhead of the perceptual loss (images/s of the pixel-wise model over "
            "the perceptual one, minus 1, averaged over "
            f"{summary.get('perceptual_overhead_pairs', 0)} pixel/perceptual pair(s)): "
            f"**{100 * summary['perceptual_overhead']:+.0f}%**"
            + (
                f" (± {100 * summary['perceptual_overhead_std']:.0f}%)"
                if summary.get("perceptual_overhead_pairs", 0) > 1
                else ""
            )
            + (
                f" with {summary.get('perceptual_net')}; measured on a CPU, so not comparable with "
                "the paper's +12 ± 3% (AlexNet on a GPU)."
                if _on_cpu(summary)
                else f" with {summary.get('perceptual_net')}; the paper reports +12 ± 3% with "
                "AlexNet on a GPU."
            ),
        ]
    if variants:
        each = [
            f"{m} {100 * v['overhead']:+.0f}%"
            for m, v in summary["variants"].items()
            if v["overhead"] is not None
        ]
        if each:
            out += ["", "Training-time overhead over the pixel-wise twin: " + ", ".join(each)]
    ips = summary["images_per_second"]
    if ips and (summary.get("perceptual_overhead") is not None or variants):
        out.append("")
        out.append("Training throughput (images/s): " + ", ".join(f"{m} {ips[m]:.0f}" for m in ips))
    return out
