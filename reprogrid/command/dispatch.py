"""A run's train and evaluate, whichever way it trains: reprogrid's own training
(reprogrid.training, reprogrid.evaluation) or the user's command, run as it is
(training.command: reprogrid.command.run, reprogrid.command.outputs)."""

from __future__ import annotations

from reprogrid.record.sealed import read_sealed


def run_train(run_config: dict, seeds_path, model_path, train_json_path, kind: str = "run", log_path=None) -> dict:
    """Train one run: model.pt and the sealed train.json. A command's output goes to `log_path`."""
    if "command" in run_config["training"]:
        from reprogrid.command.run import run_command_train

        return run_command_train(run_config, seeds_path, model_path, train_json_path, log_path, kind)
    from reprogrid.training.train_run import run_train as train_with_reprogrid

    return train_with_reprogrid(run_config, seeds_path, model_path, train_json_path, kind)


def run_evaluate(train_json_path, model_path, tracking_path, eval_json_path, predictions_path,
                 weights_path=None, extra_tags: dict | None = None) -> dict:
    """Evaluate one trained run, record it in MLflow, write eval.json."""
    if "command" in read_sealed(train_json_path):  # the script evaluated itself
        from reprogrid.command.outputs import run_command_evaluate

        return run_command_evaluate(train_json_path, model_path, tracking_path, eval_json_path, predictions_path,
                                    weights_path, extra_tags)
    from reprogrid.evaluation.evaluate_run import run_evaluate as evaluate_with_reprogrid

    return evaluate_with_reprogrid(train_json_path, model_path, tracking_path, eval_json_path, predictions_path,
                                   weights_path, extra_tags)
