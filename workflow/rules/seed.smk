rule seed:
    """Derive every source's seed for one run (no torch: cheap)."""
    output:
        f"{RUN_DIR}/seeds.json",
    params:
        # rerun triggers (Snakemake compares params that depend on wildcards only)
        root_seed=config["root_seed"],
        modes=lambda wildcards: cfg.seed_modes(config, wildcards.setting),
        args=lambda wildcards, output: json.dumps(
            {
                "run_key": cfg.run_key(wildcards.setting, wildcards.libconf, wildcards.replicate),
                "root_seed": config["root_seed"],
                "modes": cfg.seed_modes(config, wildcards.setting),
                "replicate": int(wildcards.replicate),
                "out_path": output[0],
            }
        ),
    log:
        "results/logs/{setting}/{libconf}/r{replicate}/seed.log",
    shell:
        step("seed")
