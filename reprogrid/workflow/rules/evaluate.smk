rule evaluate:
    """Evaluate one trained run on the test split, then record it in MLflow, whole."""
    input:
        model=rules.train.output.model,
        record=rules.train.output.record,
    output:
        record=f"{RUN_DIR}/eval.json",
        predictions=f"{RUN_DIR}/predictions.npz",
        weights=f"{RUN_DIR}/weights.npy",
    log:
        f"{LOG_DIR}/evaluate.log",
    threads: libconf_threads
    resources:
        # on a cluster: what the executor requests per job (profiles/slurm)
        mem_mb=2000,
        runtime=15,
        gpu=libconf_gpus,
    params:
        tracking_file=json.dumps(TRACKING_FILE),
        # where runs are recorded: changing it records every run anew
        tracking=[TRACKING_URI, config["experiment"]],
        cpu_capability=libconf_cpu_capability,
    shell:
        step(
            "evaluate",
            of_run=True,
            train_json_path="input.record",
            model_path="input.model",
            tracking_path="params.tracking_file",
            eval_json_path="output.record",
            predictions_path="output.predictions",
            weights_path="output.weights",
            cpu_capability="params.cpu_capability",
        )
