rule compare:
    """Compare every run of the grid: summary.csv, pairs.csv, attribution.csv,
    libconfs.csv, the figures and report.html."""
    input:
        evals=expand("results/runs/{key}/eval.json", key=RUN_KEYS),
        predictions=expand("results/runs/{key}/predictions.npz", key=RUN_KEYS),
        weights=expand("results/runs/{key}/weights.npy", key=RUN_KEYS),
        trains=expand("results/runs/{key}/train.json", key=RUN_KEYS),
    output:
        summary="results/compare/summary.csv",
        pairs="results/compare/pairs.csv",
        attribution="results/compare/attribution.csv",
        libconfs="results/compare/libconfs.csv",
        divergence="results/compare/divergence.csv",
        power="results/compare/power.csv",
        versus="results/compare/versus.csv",
        variants="results/compare/variants.csv",
        report="results/compare/report.html",
        attribution_figure=report(
            "results/compare/figures/attribution.png",
            caption="../report/attribution.rst",
            category="Which source matters",
        ),
        accuracy_figure=report(
            "results/compare/figures/accuracy.png",
            caption="../report/accuracy.rst",
            category="Every run",
        ),
        disagreement_figure=report(
            "results/compare/figures/disagreement.png",
            caption="../report/disagreement.rst",
            category="Where runs disagree",
        ),
        cost_figure=report(
            "results/compare/figures/cost.png",
            caption="../report/cost.rst",
            category="Cost of determinism",
        ),
        variants_figure=report(
            "results/compare/figures/variants.png",
            caption="../report/variants.rst",
            category="Is the change real?",
        ),
    log:
        "results/logs/compare.log",
    params:
        run_dirs=expand("results/runs/{key}", key=RUN_KEYS),
        tracking_file=TRACKING_FILE,
        reference_libconf=cfg.reference_libconf(config),
        localise=config.get("localise", False),
        effect_sizes=config.get("effect_size", {}),
    script:
        "../scripts/compare.py"
