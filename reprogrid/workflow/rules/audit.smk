rule audit:
    """Audit the experiment from MLflow alone (reprogrid audit): results/audit.json.
    Violations are written there, not raised: `reprogrid audit` is the gate."""
    input:
        # after the grid: the compare step has seen every run
        "results/compare/summary.csv",
    output:
        report="results/audit.json",
    log:
        "results/logs/audit.log",
    params:
        tracking_uri=json.dumps(TRACKING_URI),
        experiment=json.dumps(config["experiment"]),
    shell:
        step(
            "audit",
            tracking_uri="params.tracking_uri",
            experiment="params.experiment",
            json_path="output.report",
        )
