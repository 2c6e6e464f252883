rule train:
    """Train one run, save model.pt and train.json, open its MLflow run."""
    input:
        seeds=rules.seed.output[0],
        # ancient: recreating the experiment record must not retrain every run
        tracking=ancient(rules.tracking.output[0]),
    output:
        model=f"{RUN_DIR}/model.pt",
        record=f"{RUN_DIR}/train.json",
    params:
        # Rerun triggers (Snakemake compares params that depend on wildcards only):
        # editing the run's resolved config reruns exactly this run, and changing where
        # runs are logged logs every run anew.
        run_config=run_config,
        tracking=[TRACKING_URI, config["experiment"]],
        args=lambda wildcards, input, output: json.dumps(
            {
                "run_config": run_config(wildcards),
                "seeds_path": input.seeds,
                "tracking_path": input.tracking,
                "model_path": output.model,
                "train_json_path": output.record,
                "workflow_dir": workflow.basedir,
            }
        ),
    threads: libconf_threads
    log:
        "results/logs/{setting}/{libconf}/r{replicate}/train.log",
    shell:
        step("train")
