"""Where does "instability" begin? A sweep of the built-in MLP on digits.

Summers & Dinneen (ICML 2021): nudging ONE initial weight by one unit in the last place
(1 ULP) can make two trained networks disagree on as many test predictions as varying
every source of randomness. This sweep measures, per training configuration,

- ``ulp_disagreement``: mean pairwise test disagreement between replicates of the cell
  ``{ulp: vary}`` (everything fixed, each replicate nudges a different initial weight);
- ``all_disagreement``: the same for ``{init, order, dropout, augment: vary}``;
- ``ratio`` = ulp / all, and the test accuracy (mean over both cells' runs, and per cell).

Every run is reprogrid's own code, in-process, exactly as the workflow's ``seed`` and
``train`` and ``evaluate`` steps build it: ``reprogrid.config.resolve_run_config`` (the
run config), ``reprogrid.config.seeds.derive_seeds`` (the seeds), ``reprogrid.inputs.library
.apply_library`` (threads: 1), ``reprogrid.inputs.data.load_split`` (the split),
``reprogrid.training.trainer.train_model`` (the built-in loop, the 1-ULP nudge included) and
``reprogrid.evaluation.evaluator.evaluate_model``; disagreement is ``reprogrid.analysis.stats.disagreements``.
Nothing is written to MLflow. One process, one thread.

Regenerate the default sweep (2 architectures x 2 schedules x 2 epoch counts x 6 learning
rates, 8 replicates: 48 points, 816 runs; measured 8 min 37 s on one thread of a 2-core machine):

    .venv/bin/python benchmarks/instability.py

which writes ``benchmarks/results/instability/map.csv`` and ``map.png``. Options narrow
or widen it, e.g. ``--lrs 0.2 0.4 --epochs 60 --schedules cosine --replicates 10
--out /tmp/x``; ``--help`` lists them. Rows are appended to the CSV as they finish and
a rerun with the same ``--out`` skips the rows it already has (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "instability"

# The base grid: config/examples/ablation.yaml's model, data and augmentation; only the
# swept training knobs change.
BASE = {
    "experiment": "reprogrid-instability",
    "root_seed": 2021,
    "replicates": 8,
    "dataset": {"name": "digits", "test_fraction": 0.2},
    "model": {"name": "mlp", "hidden": [64], "dropout": 0.2},
    "training": {"epochs": 15, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
    "augment": {"noise_std": 0.05},
    "seed_settings": {
        "control": {},
        "ulp": {"ulp": "vary"},
        "all": {"init": "vary", "order": "vary", "dropout": "vary", "augment": "vary"},
    },
    "library_configs": {"t1": {"threads": 1}},
}

FIELDS = ["root_seed", "model", "hidden", "dropout", "noise_std", "batch_size", "momentum", "lr", "epochs", "lr_schedule",
          "replicates", "accuracy_mean", "accuracy_min", "ulp_accuracy_mean", "all_accuracy_mean",
          "control_accuracy", "ulp_disagreement", "all_disagreement", "ratio", "ulp_vs_control",
          "diverged_runs", "seconds"]


def make_config(lr: float, epochs: int, schedule: str, replicates: int, hidden: list[int], dropout: float,
                noise_std: float, batch_size: int, momentum: float, model: str = "mlp",
                root_seed: int = BASE["root_seed"]) -> dict:
    """A complete, schema-valid reprogrid config for one point of the sweep."""
    config = json.loads(json.dumps(BASE))
    config["replicates"], config["root_seed"] = replicates, root_seed
    if model == "mlp":
        config["model"] = {"name": "mlp", "hidden": list(hidden), "dropout": dropout}
    else:
        config["model"] = {"name": "cnn", "channels": list(hidden), "dropout": dropout}
    config["training"] = {"epochs": epochs, "batch_size": batch_size, "optimizer": "sgd", "lr": lr,
                          "momentum": momentum}
    if schedule != "none":
        config["training"]["lr_schedule"] = schedule
    config["augment"] = {"noise_std": noise_std}
    return config


def validate(config: dict) -> None:
    """The workflow's own checks: the schema (as Snakemake validates it) and check_config."""
    import jsonschema

    from reprogrid import config as cfg

    jsonschema.validate(config, cfg.SCHEMA)
    cfg.check_config(config)


def run_once(config: dict, setting: str, replicate: int):
    """One grid run, as the workflow's train and evaluate steps do it: (accuracy,
    predicted classes, train seconds), or None when the loss became NaN/infinite."""
    from reprogrid import config as cfg
    from reprogrid.config.seeds import derive_seeds, draw_unseeded
    from reprogrid.evaluation.evaluator import evaluate_model
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.library import apply_library
    from reprogrid.training.contract import NumericalDivergence
    from reprogrid.training.trainer import train_model

    run_config = cfg.resolve_run_config(config, setting, "t1", replicate)
    seeds = draw_unseeded(derive_seeds(config["root_seed"], run_config["seed_modes"], replicate))
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    try:
        result = train_model(run_config, seeds, split)
    except NumericalDivergence:
        return None
    metrics, logits, _ = evaluate_model(result.model, run_config, split)
    return metrics["test_accuracy"], logits.argmax(axis=1), result.train_seconds


def measure(config: dict) -> dict:
    """Train control (1 run), ulp and all (`replicates` runs each); summarise."""
    from reprogrid.analysis.stats import disagreements

    started = time.perf_counter()
    control = run_once(config, "control", 1)
    cells, diverged = {}, 0
    for setting in ("ulp", "all"):
        runs = [run_once(config, setting, r) for r in range(1, config["replicates"] + 1)]
        diverged += sum(run is None for run in runs)
        cells[setting] = [run for run in runs if run is not None]

    def pairwise(runs):
        return float(disagreements(np.stack([p for _, p, _ in runs])).mean()) if len(runs) >= 2 else math.nan

    def accuracy(runs):
        return float(np.mean([a for a, _, _ in runs])) if runs else math.nan

    both = cells["ulp"] + cells["all"]
    ulp, every = pairwise(cells["ulp"]), pairwise(cells["all"])
    vs_control = (float(np.mean([(p != control[1]).mean() for _, p, _ in cells["ulp"]]))
                  if control is not None and cells["ulp"] else math.nan)
    return {
        "accuracy_mean": accuracy(both),
        "accuracy_min": float(min(a for a, _, _ in both)) if both else math.nan,
        "ulp_accuracy_mean": accuracy(cells["ulp"]),
        "all_accuracy_mean": accuracy(cells["all"]),
        "control_accuracy": control[0] if control is not None else math.nan,
        "ulp_disagreement": ulp,
        "all_disagreement": every,
        "ratio": ulp / every if every and every > 0 else math.nan,
        "ulp_vs_control": vs_control,
        "diverged_runs": diverged + (control is None),
        "seconds": time.perf_counter() - started,
    }


def key_of(row: dict) -> tuple:
    return tuple(str(row[k]) for k in FIELDS[:FIELDS.index("replicates") + 1])


def fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def plot(rows: list[dict], path: Path) -> None:
    """One row of panels per architecture: ulp/all ratio and accuracy against the
    learning rate, one line per (schedule, epochs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    def arch(row):
        return (f"{row['model']} [{row['hidden']}], dropout {row['dropout']}, noise {row['noise_std']}, "
                f"batch {row['batch_size']}, momentum {row['momentum']}, root_seed {row['root_seed']}")

    archs = sorted({arch(r) for r in rows})
    fig, axes = plt.subplots(len(archs), 2, figsize=(12, 4.2 * len(archs)), squeeze=False)
    for (ax_ratio, ax_acc), name in zip(axes, archs):
        groups: dict[tuple, list[dict]] = {}
        for row in rows:
            if arch(row) == name:
                groups.setdefault((str(row["lr_schedule"]), int(row["epochs"])), []).append(row)
        for (schedule, epochs), members in sorted(groups.items()):
            members = sorted(members, key=lambda r: float(r["lr"]))
            lrs = [float(r["lr"]) for r in members]
            label = f"{schedule}, {epochs} epochs"
            style = "-" if schedule == "cosine" else "--"
            line, = ax_ratio.plot(lrs, [float(r["ratio"]) for r in members], style, marker="o", label=label)
            ax_acc.plot(lrs, [100 * float(r["accuracy_mean"]) for r in members], style, marker="o",
                        color=line.get_color(), label=label)
        ax_ratio.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax_ratio.set(xscale="log", xlabel="learning rate (peak; SGD, momentum)",
                     ylabel="ulp / all-sources disagreement", title=f"1-ULP nudge vs all sources\n{name}")
        ax_acc.axhline(95, color="grey", lw=0.8, ls=":")
        ax_acc.set(xscale="log", xlabel="learning rate (peak; SGD, momentum)", ylabel="mean test accuracy (%)",
                   title=f"accuracy (ulp and all-sources runs)\n{name}")
        ax_acc.set_ylim(max(0.0, min(ax_acc.get_ylim()[0], 90.0)), 100)
        for ax in (ax_ratio, ax_acc):
            ax.set_xticks(sorted({float(r["lr"]) for r in rows if arch(r) == name}))
            ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax_ratio.legend(fontsize=8)
        ax_acc.legend(fontsize=8)
        for ax in (ax_ratio, ax_acc):
            ax.title.set_fontsize(9)
    fig.suptitle("Instability on digits (reprogrid built-in MLP, in-process): dotted lines mark the bar "
                 "(ratio 0.5, accuracy 95 %)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3, 0.4])
    parser.add_argument("--epochs", type=int, nargs="+", default=[15, 30])
    parser.add_argument("--schedules", nargs="+", default=["none", "cosine"], choices=["none", "step", "cosine"])
    parser.add_argument("--replicates", type=int, default=8, help="runs per cell (ulp and all; control: 1)")
    parser.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    parser.add_argument("--hidden", nargs="+", default=["64", "128,128"],
                        help="architectures to sweep, each comma-separated widths (mlp hidden; cnn: its two channels)")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--noise-std", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--root-seed", type=int, default=BASE["root_seed"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fresh", action="store_true", help="discard the existing map.csv in --out")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "map.csv"
    rows = []
    if csv_path.exists() and not args.fresh:
        with open(csv_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    done = {key_of(r) for r in rows}
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    for spec, schedule, epochs, lr in itertools.product(args.hidden, args.schedules, args.epochs, args.lrs):
        hidden = [int(width) for width in spec.split(",")]
        point = {"root_seed": args.root_seed, "model": args.model, "hidden": " ".join(map(str, hidden)), "dropout": args.dropout,
                 "noise_std": args.noise_std, "batch_size": args.batch_size, "momentum": args.momentum, "lr": lr,
                 "epochs": epochs, "lr_schedule": schedule, "replicates": args.replicates}
        if key_of(point) in done:
            continue
        config = make_config(lr, epochs, schedule, args.replicates, hidden, args.dropout, args.noise_std,
                             args.batch_size, args.momentum, args.model, args.root_seed)
        validate(config)
        row = point | measure(config)
        rows.append({k: fmt(v) for k, v in row.items()})
        with open(csv_path, "a", newline="") as handle:
            csv.DictWriter(handle, FIELDS).writerow(rows[-1])
        print(f"[{point['hidden']}] {schedule:>6} {epochs:>3} ep lr {lr:<5} acc {row['accuracy_mean']:.4f} "
              f"ulp {row['ulp_disagreement']:.4f} all {row['all_disagreement']:.4f} "
              f"ratio {row['ratio']:.2f} ({row['seconds']:.0f} s)", flush=True)
    plot(rows, args.out / "map.png")


if __name__ == "__main__":
    main()
