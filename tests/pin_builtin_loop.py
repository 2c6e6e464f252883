"""Pin the built-in training loop's results: the initial and final weights hashes, every
epoch's fingerprint and the predictions hash of the first replicate of every reproducible
cell of the demo grid (config/config.yaml) and the ablation (config/examples/ablation.yaml),
trained in this process exactly as the train and evaluate steps train them.

The bits depend on the kernels that computed them, so pins are keyed by what picks the
kernels (`kernel_key`): torch's version, the SIMD path its CPU kernels take (its CPU
capability: ATEN_CPU_CAPABILITY, else the CPU's best), the best path the CPU has, its vendor
and whether it has AMX (MKL and oneDNN pick their own kernels by the CPU), and the BLAS
torch was built with. On a machine whose
key has no pin yet:

    python tests/pin_builtin_loop.py --add     # adds this machine's pin to tests/data/builtin_loop.json

tests/test_builtin_loop_pinned.py recomputes them and requires the same bits where its
key is pinned, and says which pin is missing elsewhere.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PINS = REPO / "tests" / "data" / "builtin_loop.json"
CONFIGS = {"demo": REPO / "config" / "config.yaml", "ablation": REPO / "config" / "examples" / "ablation.yaml"}
REPLICATES = (1,)


def kernel_key() -> str:
    import torch

    from reprogrid.record.envvars import supported_capabilities

    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return (f"torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability().lower()}, "
            f"cpu {supported_capabilities()[-1]}, {cpu_vendor()}, blas {blas.group(1) if blas else 'unknown'}")


def cpu_vendor() -> str:
    """The CPU's vendor, and AMX where it has it: MKL and oneDNN pick their kernels by both
    (an AMD EPYC and an Intel Xeon with AMX, both AVX-512, give other bits)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", info, re.MULTILINE)
    amx = re.search(r"^flags\s*:.*\bamx_tile\b", info, re.MULTILINE)
    return f"vendor {vendor.group(1) if vendor else 'unknown'}{' with AMX' if amx else ''}"


def pinned_runs(config: dict):
    """(key, run_config) for the runs pinned from `config`: those predicted to rerun bit for bit."""
    from reprogrid import config as cfg
    from reprogrid.training.prediction import expect_rerun_bitwise

    for setting, libconf in cfg.grid_cells(config):
        for replicate in REPLICATES:
            run_config = cfg.resolve_run_config(config, setting, libconf, replicate)
            if expect_rerun_bitwise(run_config):
                yield run_config["run_key"], run_config


def results_of(run_config: dict) -> dict:
    """What the train and evaluate steps would record for this run, computed here."""
    from reprogrid.config.seeds import derive_seeds, draw_unseeded
    from reprogrid.evaluation.evaluator import evaluate_model
    from reprogrid.inputs.data import load_split
    from reprogrid.inputs.library import apply_library
    from reprogrid.record.hashing import predictions_digest
    from reprogrid.training.trainer import train_model

    seeds = draw_unseeded(derive_seeds(run_config["root_seed"], run_config["seed_modes"], run_config["replicate"]))
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    result = train_model(run_config, seeds, split)
    _, logits, labels = evaluate_model(result.model, run_config, split)
    return {"init_weights": result.init_weights, "epochs": [e["weights"] for e in result.epochs],
            "predictions": predictions_digest(logits, labels)}


def pin() -> dict:
    runs = {}
    for name, path in CONFIGS.items():
        config = yaml.safe_load(path.read_text())
        runs[name] = {key: results_of(run_config) for key, run_config in pinned_runs(config)}
    return runs


def main(argv: list[str]) -> int:
    if argv != ["--add"]:
        print(__doc__, file=sys.stderr)
        return 2
    pins = json.loads(PINS.read_text())
    pins[kernel_key()] = pin()
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    print(f"pinned: {kernel_key()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
