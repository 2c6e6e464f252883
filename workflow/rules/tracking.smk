rule tracking:
    """Create the MLflow store and experiment once, before runs fan out."""
    output:
        "results/tracking.json",
    params:
        uri=TRACKING_URI,
        experiment=config["experiment"],
    log:
        "results/logs/tracking.log",
    script:
        "../../scripts/prepare_tracking.py"
