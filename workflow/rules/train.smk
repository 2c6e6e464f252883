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
        run_config=run_config,
        tracking_uri=TRACKING_URI,
        experiment=config["experiment"],
    threads: libconf_threads
    log:
        "results/logs/{setting}/{libconf}/r{replicate}/train.log",
    script:
        "../../scripts/train.py"
