"""Inside one re-execution of a run of reprogrid's own training (`reprogrid diverge`): the
run trained again up to the probed epoch with reprogrid.watch.probe's Probe told of its
start, its generators and its epochs' ends. Runs in a process of its own, started by
`reprogrid.investigate.diverge` (which restores the run's recorded numerics environment
variables before torch loads)."""

from __future__ import annotations

from reprogrid.watch.probe import Probe, StopProbe


def probe_run(request: dict) -> dict:
    """Re-execute the run in `request` (run_config, seeds, env_vars) up to `epoch`, and
    return the fingerprints of that epoch's steps (and the ops of `op_step`)."""
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.library import apply_library
    from reprogrid.training import contract
    from reprogrid.training.trainer import train_model

    run_config, seeds = request["run_config"], dict(request["seeds"])  # as recorded, unseeded ones too
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    probe = Probe(request["epoch"], request.get("op_step"))
    contract.PROBE = probe
    probe.install()
    try:
        train_model(run_config, seeds, split)
    except StopProbe:
        pass
    finally:
        probe.remove()
        contract.PROBE = None
    return {"run_key": run_config["run_key"], "epoch": request["epoch"], "steps": probe.steps, "ops": probe.ops,
            "epoch_weights": probe.epoch_weights}
