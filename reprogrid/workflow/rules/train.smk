rule train:
    """Train one run: model.pt and the sealed train.json (nothing in MLflow yet)."""
    input:
        seeds=rules.seed.output.seeds,
        data=DATA_FILES,
    output:
        model=f"{RUN_DIR}/model.pt",
        record=f"{RUN_DIR}/train.json",
    log:
        f"{LOG_DIR}/train.log",
    threads: libconf_threads
    resources:
        # on a cluster: what the executor requests per job (profiles/slurm)
        mem_mb=2000,
        runtime=60,
        gpu=libconf_gpus,
    params:
        run_config=run_config,
        cpu_capability=libconf_cpu_capability,
    shell:
        step(
            "train",
            of_run=True,
            run_config="params.run_config",
            seeds_path="input.seeds",
            model_path="output.model",
            train_json_path="output.record",
            cpu_capability="params.cpu_capability",
            log_path="log",  # a training.command's own output goes there too
        )
