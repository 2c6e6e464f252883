rule tracking:
    """Create the MLflow store and experiment once, before runs fan out."""
    output:
        "results/tracking.json",
    params:
        tracking=[TRACKING_URI, config["experiment"]],  # rerun trigger
        args=lambda wildcards, output: json.dumps(
            {"uri": TRACKING_URI, "experiment": config["experiment"], "out_path": output[0]}
        ),
    log:
        "results/logs/tracking.log",
    shell:
        step("tracking")
