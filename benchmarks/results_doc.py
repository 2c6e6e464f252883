"""Generate benchmarks/RESULTS.md from benchmarks/RESULTS.md.j2 and the measurements in
benchmarks/results/*.json, so that every figure it quotes is a committed measurement.

    python benchmarks/results_doc.py           # rewrite benchmarks/RESULTS.md
    python benchmarks/results_doc.py --check   # exit 1 if RESULTS.md is not what the JSON gives

benchmarks/run_all.sh runs it after measuring; tests/test_results_doc.py runs --check's logic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jinja2

HERE = Path(__file__).resolve().parent
TEMPLATE, OUTPUT, RESULTS = HERE / "RESULTS.md.j2", HERE / "RESULTS.md", HERE / "results"

GPU_DESCRIBED = {
    "default": "`default` (PyTorch's CUDA defaults)",
    "deterministic": "`deterministic` (deterministic algorithms, cuDNN deterministic, no benchmark, no TF32, "
                     "`CUBLAS_WORKSPACE_CONFIG=:4096:8`)",
    "benchmark": "`benchmark` (`cudnn.benchmark=True`)",
    "warn_only": "`warn_only` (deterministic algorithms, `warn_only`)",
}


def overhead_row(result: dict) -> str:
    """runs × compute per run (bare / workflow) | bare | workflow | ratio | overhead per run."""
    workflow = result["workflow"]["cores2"]
    return (f"{result['runs']} × {result['compute_seconds_median']:.2f} s / {workflow['compute_seconds_median']:.2f} s"
            f" | {result['bare_seconds']:.1f} s | {workflow['seconds']:.1f} s | **{workflow['ratio_to_bare']:.2f}**"
            f" | {workflow['overhead_seconds_per_run']:.2f} s")


def finding(found: dict) -> str:
    """What `reprogrid diverge` found, in one cell."""
    where = [f"epoch {found['epoch']}"]
    if found.get("step") is not None:
        where += [f"step {found['step']}"] + ([found["phase"]] if found["phase"] != found["cause"] else [])
    if found.get("op"):
        where.append(f"`{found['op']}` in `{found['module']}`")
    elif found.get("generator"):
        where.append(f"{'source' if found['epoch'] == 0 else 'generator'} `{found['generator']}`")
    return f"{found['cause']}: " + ", ".join(where)


def measurements() -> dict:
    """Every benchmarks/results/*.json by its stem ('-' as '_')."""
    return {path.stem.replace("-", "_"): json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}


def render() -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, trim_blocks=True, autoescape=False)
    environment.filters["replace_order"] = lambda with_checkpoints: "with" if with_checkpoints else "without"
    return environment.get_template(TEMPLATE.name).render(
        **measurements(), overhead_row=overhead_row, finding=finding, gpu_described=GPU_DESCRIBED)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether RESULTS.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.exists() and OUTPUT.read_text() == text
        print(f"{OUTPUT}: {'current' if current else 'NOT what benchmarks/results/*.json give: regenerate it'}")
        return 0 if current else 1
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
