"""A run as compare sees it (RunResult): read from what the train and evaluate steps
sealed (train.json, eval.json, predictions.npz, weights.npy), its metrics recomputed from
its predictions (reprogrid.analysis.recompute), never taken on trust from eval.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reprogrid.analysis.recompute import disagreements, metrics_from
from reprogrid.record.hashing import file_digest, predictions_digest
from reprogrid.record.sealed import IntegrityError, read_sealed
from reprogrid.training.prediction import (
    entropy_seeded_drawn,
    of_record,
    unseeded_drawn,
    unused_sources,
    varied_sources,
)


@dataclass
class RunResult:
    key: str
    setting: str
    libconf: str
    replicate: int
    expect_bitwise: bool
    varied_sources: str
    init_weights: str
    weights: str
    predictions: str
    fingerprints: list[str]
    metrics: dict
    train_seconds: float
    logits: np.ndarray | None  # (examples, classes); None where the model does not classify
    labels: np.ndarray | None
    weights_path: Path | None  # flattened final weights, read only when compared
    mlflow_run_id: str | None = None  # the MLflow run that records it
    unused_sources: str = ""  # varied or unseeded, but the run never drew from the source's stream
    library_unreached: str = ""  # library knobs that never reached the training (num_workers: no worker started)
    rng: dict = field(default_factory=dict)  # phase -> global generators drawn (reprogrid.inputs.rngtrace)
    rng_epochs: dict = field(default_factory=dict)  # generator -> in how many training epochs it was drawn
    unseeded_drawn: list = field(default_factory=list)  # drawn while training, left unseeded by the libconf
    os_entropy_drawn: list = field(default_factory=list)  # drawn while training, seeded from an unseeded source
    worker_duplicates: list = field(default_factory=list)  # generators loader workers started from in one state
    command: str = ""  # a training.command run: the command as run
    step_fingerprints: list = field(default_factory=list)  # a command run's [step, digest], optimizer 0's
    seeding_story: str = ""  # a command run: what it seeded and drew, in words (reprogrid.command.story)
    variant: str = ""  # in a grid with variants: the variant it trained

    @property
    def classifies(self) -> bool:
        return self.logits is not None

    def final_weights(self) -> np.ndarray | None:
        """Read once, when first compared (a run meets every other run of its cell and
        of its replicate)."""
        if not hasattr(self, "_weights"):
            present = self.weights_path is not None and self.weights_path.is_file()
            self._weights = np.load(self.weights_path) if present else None
        return self._weights

    def predicted(self) -> np.ndarray:
        if not hasattr(self, "_predicted"):
            self._predicted = self.logits.argmax(axis=1)
        return self._predicted


def load_run(run_dir: str | Path) -> RunResult:
    run_dir = Path(run_dir)
    train, evaluation = read_sealed(run_dir / "train.json"), read_sealed(run_dir / "eval.json")
    for name, recorded in evaluation["files"].items():  # predictions.npz, weights.npy
        if file_digest(run_dir / name) != recorded:
            raise IntegrityError(f"{run_dir / name}: its sha256 is not the one {run_dir / 'eval.json'} recorded, "
                                 f"so it was changed after evaluation: rerun evaluate "
                                 f"(snakemake --forcerun evaluate {run_dir / 'eval.json'})")
    run_config = train["run_config"]
    with np.load(run_dir / "predictions.npz") as stored:
        outputs, targets = stored["logits"], stored["labels"]
    if predictions_digest(outputs, targets) != evaluation["hashes"]["predictions"]:
        raise IntegrityError(f"{run_dir / 'predictions.npz'}: its predictions do not hash to the "
                             f"reprogrid.hash.predictions in {run_dir / 'eval.json'}")
    task = train.get("task", "classification")
    own_evaluation = "evaluation" in run_config or "command" in train  # metrics of the user's own code
    if run_config.get("model", {}).get("name") == "vae" or own_evaluation:
        task = "own"  # metrics that need the inputs or the user's code: taken as sealed
    recomputed = metrics_from(outputs, targets, task, run_config.get("training", {}).get("loss", "auto"))
    wrong = disagreements(evaluation["metrics"], recomputed)
    if wrong:
        raise IntegrityError(f"{run_dir / 'eval.json'}: its metrics are not what its predictions give "
                             f"({'; '.join(wrong)}): it was edited after evaluation; rerun evaluate "
                             f"(snakemake --forcerun evaluate {run_dir / 'eval.json'})")
    classifies = "test_accuracy" in recomputed or (own_evaluation and "test_accuracy" in evaluation["metrics"]
                                                    and outputs.ndim == 2 and targets.shape == outputs.shape[:1]
                                                    and len(targets) and outputs.shape[1] > targets.max())
    if "command" in train:
        return command_result(train, evaluation, outputs if classifies else None, targets if classifies else None,
                              run_dir)
    return RunResult(
        key=train["run_key"], setting=run_config["setting"], libconf=run_config["libconf"],
        variant=run_config.get("variant") or "",
        replicate=run_config["replicate"], expect_bitwise=train["expect_bitwise"],
        varied_sources=",".join(varied_sources(run_config, **of_record(train))),
        unused_sources=",".join(unused_sources(run_config, train.get("sources_used"))),
        library_unreached=",".join(train.get("library_unreached", [])),
        init_weights=train["hashes"]["init_weights"], weights=train["hashes"]["weights"],
        predictions=evaluation["hashes"]["predictions"],
        fingerprints=[e["weights"] for e in train["epochs"]],
        # the recorded loss is kept (within tolerance of the recomputed one); the rest is exact
        metrics=evaluation["metrics"] | {k: v for k, v in recomputed.items() if k != "test_loss"},
        train_seconds=train["train_seconds"], mlflow_run_id=evaluation.get("mlflow_run_id"),
        rng=train.get("rng", {}), rng_epochs=_epochs_drawing(train["epochs"]),
        unseeded_drawn=unseeded_drawn(run_config, train.get("rng", {})),
        os_entropy_drawn=entropy_seeded_drawn(run_config, train.get("rng", {})),
        worker_duplicates=train.get("worker_duplicates", []),
        logits=outputs if classifies else None, labels=targets if classifies else None,
        weights_path=run_dir / "weights.npy",
    )


def _epochs_drawing(epochs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for epoch in epochs:
        for generator in epoch.get("rng", []):
            counts[generator] = counts.get(generator, 0) + 1
    return counts




def command_result(train: dict, evaluation: dict, logits, labels, run_dir: Path) -> RunResult:
    """A training.command run: its metrics are the script's own (as sealed), its
    fingerprints per recorded optimizer step, what varied from what it drew."""
    run_config = train["run_config"]
    return RunResult(
        key=train["run_key"], setting=run_config["setting"], libconf=run_config["libconf"],
        variant=run_config.get("variant") or "",
        replicate=run_config["replicate"], expect_bitwise=train["expect_bitwise"],
        varied_sources=",".join(train["varied_sources"]), library_unreached="",
        init_weights=train["hashes"]["init_weights"], weights=train["hashes"]["weights"],
        predictions=evaluation["hashes"]["predictions"], fingerprints=[],
        metrics=dict(evaluation["metrics"]), train_seconds=train["train_seconds"],
        mlflow_run_id=evaluation.get("mlflow_run_id"), rng=train["rng"],
        logits=logits, labels=labels, weights_path=run_dir / "weights.npy",
        command=train["command"],
        step_fingerprints=[[step, digest] for optimizer, step, digest in train["fingerprints"] if optimizer == 0],
        seeding_story=train["seeding_story"],
    )
