rule seed:
    """Derive every source's seed for one run (no torch: cheap)."""
    output:
        f"{RUN_DIR}/seeds.json",
    params:
        root_seed=config["root_seed"],
        modes=lambda wildcards: cfg.seed_modes(config, wildcards.setting),
    log:
        "results/logs/{setting}/{libconf}/r{replicate}/seed.log",
    script:
        "../../scripts/seed.py"
