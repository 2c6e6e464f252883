"""Preflight: what the config names is checked against this machine before any job.

`check_inputs` runs when the workflow is parsed (so `snakemake -n` says it too): the data
file is read, a CUDA device looked for. Step `preflight` runs once before any run
exists, where the config names the user's own code: the factories are imported and
called, the model meets the data and the loss.
"""

from __future__ import annotations

import logging

from reprogrid import config as cfg
from reprogrid.config.seeds import derive_seeds, draw_unseeded

log = logging.getLogger("reprogrid")


def check_inputs(config: dict) -> None:
    """The data file, the devices and CPU capabilities the config asks for; a ConfigError
    naming the key."""
    check_device(config)
    check_cpu_capabilities(config)
    if "dataset" in config:  # a training.command run reads its data itself
        check_dataset_file(config["dataset"])


def check_cpu_capabilities(config: dict) -> None:
    from reprogrid.record.envvars import check_capability

    for name, knobs in config["library_configs"].items():
        if (knobs or {}).get("cpu_capability"):
            try:
                check_capability(knobs["cpu_capability"])
            except ValueError as error:
                raise cfg.ConfigError(f"library_configs.{name}.cpu_capability", str(error)) from None


def check_dataset_file(dataset: dict) -> None:
    """A file dataset is read now (cheap next to a grid): missing, empty, unreadable or
    without its target column, it stops the workflow before any job."""
    if "path" not in dataset:
        return
    from pathlib import Path

    from reprogrid.inputs.usercode import detect_task, read_table

    if dataset["path"].lower().endswith(".csv") and "target" not in dataset:
        raise cfg.ConfigError("dataset.target", "name the CSV column that holds the label or value to predict")
    _, target = read_table(Path(dataset["path"]), dataset.get("target"), "dataset.path")
    detect_task(dataset.get("task", "auto"), target, "dataset.task")


def check_device(config: dict) -> None:
    wants_cuda = [
        name for name, knobs in config["library_configs"].items()
        if (knobs or {}).get("device") == "cuda"
    ]
    if not wants_cuda:
        return
    import torch  # only paid for when a config asks for CUDA

    if not torch.cuda.is_available():
        raise cfg.ConfigError(
            f"library_configs.{wants_cuda[0]}.device",
            "asks for cuda, but torch sees no CUDA device on this machine; use device: cpu",
        )


def run_preflight(config: dict) -> None:
    """The user's own code and data, tried once before any run exists: the dataset is
    loaded (factory called or file read), the model built, two training examples passed
    through it and the loss taken. Any problem is a ConfigError naming the key."""
    import torch

    from reprogrid.inputs import randomness
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.models import build_model
    from reprogrid.training.loop import loss_function

    setting, libconf = cfg.grid_cells(config)[0]
    run_config = cfg.resolve_run_config(config, setting, libconf, 1)
    if "factory" in run_config["training"]:  # the loop itself runs only in training: found, callable
        from reprogrid.inputs.usercode import import_factory
        from reprogrid.training.contract import FIT_KEY

        import_factory(run_config["training"]["factory"], FIT_KEY)
    seeds = draw_unseeded(derive_seeds(config["root_seed"], run_config["seed_modes"], 1))
    split = load_split(run_config["dataset"], seeds["split"])
    randomness.seed_init(seeds)
    model_key = "model.factory" if "factory" in run_config["model"] else "model.name"
    try:
        model = build_model(run_config["model"], split.n_classes, split.n_features)
    except ValueError as error:  # a built-in model that cannot take this data
        raise cfg.ConfigError(model_key, str(error)) from None
    if "evaluation" in run_config:  # the user's evaluation defines what the model's outputs are
        from reprogrid.evaluation.evaluator import evaluate_run
        from reprogrid.inputs.library import torch_device, torch_dtype

        library = run_config["library"]
        model = model.to(device=torch_device(library), dtype=torch_dtype(library))
        metrics = evaluate_run(model, run_config, split, seeds)[0]
        log.info("preflight: %s returns %s for the untrained model", run_config["evaluation"]["factory"],
                 ", ".join(metrics))
        return
    inputs = torch.as_tensor(split.x_train[:2])
    targets = torch.as_tensor(split.y_train[:2], dtype=torch.float32 if split.task == "regression" else None)
    try:
        outputs = model(inputs)
    except Exception as error:  # noqa: BLE001 - the user's model meets the user's data
        raise cfg.ConfigError(model_key, f"the model cannot take the data: two training examples of shape "
                                         f"{tuple(inputs.shape[1:])} raised {type(error).__name__}: {error}") from None
    if not isinstance(outputs, torch.Tensor):
        if run_config["model"].get("name") == "vae":
            return  # reconstruction, mean, log-variance: trained by its ELBO
        raise cfg.ConfigError(model_key, f"the model returned {type(outputs).__name__}, and reprogrid's evaluation "
                                         "takes a tensor (logits, or regression outputs); for a model that returns "
                                         "something else, name your own evaluation: `evaluation: {factory: "
                                         "'pkg.module:evaluate'}`, evaluate(model, run) -> {'metrics': {...}, "
                                         "'outputs': per-example test outputs} (config/README.md, evaluation)")
    if split.task == "classification" and (outputs.ndim != 2 or outputs.shape[1] < split.n_classes):
        raise cfg.ConfigError(model_key, f"the model outputs shape {tuple(outputs.shape)} for 2 examples; to "
                                         f"classify {split.n_classes} classes it must output (2, {split.n_classes})")
    if split.task == "regression" and outputs.numel() != targets.numel():
        raise cfg.ConfigError(model_key, f"the model outputs shape {tuple(outputs.shape)} for targets of shape "
                                         f"{tuple(targets.shape)}; a regression needs one output per target")
    loss_key = "training.loss"
    loss_of = loss_function(run_config["training"], split.task)
    try:
        loss = loss_of(outputs, targets)
    except Exception as error:  # noqa: BLE001
        raise cfg.ConfigError(loss_key, f"the loss raised {type(error).__name__}: {error}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise cfg.ConfigError(loss_key, "the loss must return a single-number tensor (the batch's mean)")
    log.info("preflight: %s data (%d train, %d test, %s), model and loss work together", split.task,
             len(split.y_train), len(split.y_test), "x".join(map(str, split.x_train.shape[1:])))
