rule compare:
    """Compare every run of the grid: summary.csv, pairs.csv, report.html."""
    input:
        evals=expand("results/runs/{key}/eval.json", key=RUN_KEYS),
        predictions=expand("results/runs/{key}/predictions.npz", key=RUN_KEYS),
        trains=expand("results/runs/{key}/train.json", key=RUN_KEYS),
    output:
        summary="results/compare/summary.csv",
        pairs="results/compare/pairs.csv",
        report="results/compare/report.html",
    params:
        run_dirs=expand("results/runs/{key}", key=RUN_KEYS),
        tracking_file=TRACKING_FILE,
    log:
        "results/logs/compare.log",
    script:
        "../../scripts/compare.py"
