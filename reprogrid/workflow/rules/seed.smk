rule seed:
    """Derive every source's seed for one run (no torch: cheap)."""
    output:
        seeds=f"{RUN_DIR}/seeds.json",
    log:
        f"{LOG_DIR}/seed.log",
    params:
        root_seed=config["root_seed"],
        modes=lambda wildcards: json.dumps(cfg.seed_modes(config, wildcards.setting)),
    shell:
        step(
            "seed",
            of_run=True,
            setting="wildcards.setting",
            libconf="wildcards.libconf",
            replicate="wildcards.replicate",
            **VARIANT_ARGUMENT,
            root_seed="params.root_seed",
            modes="params.modes",
            out_path="output.seeds",
        )
