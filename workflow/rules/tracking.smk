rule tracking:
    """Create the MLflow store and experiment once, before runs fan out."""
    output:
        "results/tracking.json",
    params:
        uri=json.dumps(TRACKING_URI),
        experiment=json.dumps(config["experiment"]),
    log:
        "results/logs/tracking.log",
    shell:
        step("tracking", uri="params.uri", experiment="params.experiment", out_path="output[0]")
