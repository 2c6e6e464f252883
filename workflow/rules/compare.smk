rule compare:
    """Compare every run of the grid: summary.csv, pairs.csv, report.html."""
    input:
        evals=expand("results/runs/{key}/eval.json", key=RUN_KEYS),
        predictions=expand("results/runs/{key}/predictions.npz", key=RUN_KEYS),
        trains=expand("results/runs/{key}/train.json", key=RUN_KEYS),
        # a literal path, not rules.tracking.output: with a reference to another rule's
        # output among 30,000 inputs, Snakemake's DAG building turns quadratic
        tracking=ancient("results/tracking.json"),
    output:
        summary="results/compare/summary.csv",
        pairs="results/compare/pairs.csv",
        report="results/compare/report.html",
    params:
        run_dirs=expand("results/runs/{key}", key=RUN_KEYS),
    log:
        "results/logs/compare.log",
    script:
        "../../scripts/compare.py"
