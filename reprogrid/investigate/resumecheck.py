"""`reprogrid resume-check RESUMED REFERENCE`: when a resumed run ends differently from
the same seeds uninterrupted, name the state the resume did not restore.

The two runs' fingerprints say where they part. If that is after the epoch k the run
resumed from, both are re-executed in fresh processes up to the start of epoch k + 1
(as its run.loader begins), the reference from its start and the resumed run from the
checkpoint it resumed from, and everything a checkpoint holds is compared there, piece
by piece (reprogrid.training.checkpoint): model, optimizer, schedule, every generator the fit
holds or `run` handed out, the global ones. Then each piece that differs is restored
from the reference in turn, in a fresh resumed process, until the resumed run ends the
epoch where the two parted as the reference does: that piece is the answer. None
differs: the difference lies outside what a checkpoint can see.

Runs are named by key (`setting/libconf/rN`, under ./results/runs) or by MLflow run id.
Exit 0: the runs do not part; 1: a finding; 2: it could not be attempted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from reprogrid.analysis.divergence import first_divergent_epoch
from reprogrid.investigate import diverge
from reprogrid.record import mlflow_store as tracking

RUNS_DIR = Path("results") / "runs"
# what to check when a piece is the one not restored
LAST_IN_EPOCH = "; is run.epoch_end called before scheduler.step()? It checkpoints the epoch, so it comes last"
HINTS = {"scheduler": LAST_IN_EPOCH, "optimizer": LAST_IN_EPOCH}


class ResumeCheckError(RuntimeError):
    """The check could not be attempted (unknown run, a run that did not resume, ...)."""


def run_record(name: str, tracking_uri: str) -> tuple[dict, Path]:
    """(record as reprogrid.investigate.diverge builds it, run directory) of a run key or MLflow id."""
    if "/" in name:
        directory = Path.cwd() / RUNS_DIR / name
        if not (directory / "train.json").exists():
            raise ResumeCheckError(f"no run {name} under {Path.cwd() / RUNS_DIR}")
        return diverge.record_from_files(directory), directory
    record = diverge.load_record(tracking.existing_store_client(tracking_uri), name)
    return record, Path(record["workdir"]) / RUNS_DIR / record["train"]["run_key"]


def check(resumed: str, reference: str, tracking_uri: str) -> dict:
    (a, a_dir), (b, _) = run_record(resumed, tracking_uri), run_record(reference, tracking_uri)
    k = a["train"].get("resumed_from_epoch")
    if k is None:
        raise ResumeCheckError(f"{resumed} did not resume from a checkpoint (its train.json has no resumed_from_epoch)")
    checkpoint = a_dir / "resumed_from.pt"
    if not checkpoint.exists():
        raise ResumeCheckError(f"{checkpoint} is missing: the checkpoint {resumed} resumed from is needed")
    _same_run(a, b, resumed, reference)
    fingerprints = [[e["weights"] for e in r["train"]["epochs"]] for r in (a, b)]
    epoch = first_divergent_epoch(a["train"]["hashes"]["init_weights"], fingerprints[0],
                                  b["train"]["hashes"]["init_weights"], fingerprints[1])
    found = {"resumed": resumed, "reference": reference, "resumed_from_epoch": k, "diverged": epoch is not None,
             "epoch": epoch, "pieces": [], "culprit": None}
    if epoch is None:
        return found | {"detail": f"the resumed run ends bit for bit as the uninterrupted one (resumed after epoch {k})"}
    if epoch <= k:
        return found | {"detail": f"the runs part in epoch {epoch}, before the run was interrupted after epoch {k}: "
                                  "not a resume problem (reprogrid diverge localises it)"}
    with tempfile.TemporaryDirectory(prefix="reprogrid-resume-check-") as scratch:
        scratch = Path(scratch)
        start = k + 1
        reference_state = _child(b, {"mode": "capture", "epoch": start}, scratch / "reference.pt")
        resumed_state = _child(a, {"mode": "capture", "epoch": start, "checkpoint": str(checkpoint)},
                               scratch / "resumed.pt")
        from reprogrid.training.states import differing, first_difference

        resumed_pieces, reference_pieces = _load(resumed_state), _load(reference_state)
        pieces = [p for p in differing(resumed_pieces, reference_pieces) if p != "record"]
        found["pieces"] = pieces
        found["where"] = {p: first_difference(resumed_pieces.get(p), reference_pieces.get(p)) for p in pieces}
        culprit = None
        for piece in pieces:  # restore each from the reference in turn, to the epoch where they part
            ended = _child(a, {"mode": "end", "epoch": epoch, "checkpoint": str(checkpoint),
                               "override": str(reference_state), "piece": piece}, scratch / f"trial-{piece}.json")
            if json.loads(ended.read_text())["weights"] == fingerprints[1][epoch - 1]:
                culprit = piece
                break
    found["culprit"] = culprit
    return found | {"detail": _sentence(culprit, pieces, found.get("where", {}), k, epoch)}


def _same_run(a: dict, b: dict, resumed: str, reference: str) -> None:
    """REFERENCE must be RESUMED's run uninterrupted: the same seeds and run config but
    for the run's name and the interrupt."""
    def essence(record: dict) -> dict:
        config = {k: v for k, v in record["run_config"].items() if k not in ("run_key", "libconf", "library")}
        library = {k: v for k, v in record["run_config"]["library"].items() if k != "interrupt_after_epoch"}
        return {"config": config, "library": library, "seeds": record["seeds"]}

    different = [part for part, value in essence(a).items() if essence(b)[part] != value]
    if different:
        raise ResumeCheckError(f"{reference} is not {resumed} uninterrupted: another {' and '.join(different)}")


def _sentence(culprit: str | None, pieces: list[str], where: dict, k: int, epoch: int) -> str:
    from reprogrid.training.checkpoint import words

    if culprit is not None:
        spot = where.get(culprit) or ""
        # a state_dict's first difference says which part; a generator's is just its state
        inside = f" (first at {spot})" if spot.startswith("[") and not spot.startswith("['state']") else ""
        return (f"{words(culprit)} was not restored: resumed after epoch {k}, the run starts epoch {k + 1} with "
                f"it in another state than the uninterrupted run{inside}, and parts from it in epoch {epoch}"
                f"{HINTS.get(culprit, '')}")
    if pieces:
        return (f"at the start of epoch {k + 1} these differ from the uninterrupted run: "
                f"{'; '.join(words(p) for p in pieces)}; restoring no one of them alone from it removes the "
                f"difference in epoch {epoch}")
    return (f"every piece a checkpoint holds is the same at the start of epoch {k + 1} as in the uninterrupted run, "
            f"yet the runs part in epoch {epoch}: the difference lies in state the checkpoint does not see (a "
            "generator kept where reprogrid does not look, a global of the fit's own) or in the implementation "
            "(reprogrid diverge)")


def _load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _child(record: dict, request: dict, out: Path) -> Path:
    """Re-execute a run in a fresh process (python -m reprogrid.investigate.resumecheck --child)."""
    request_path = out.with_suffix(".request.json")
    request_path.write_text(json.dumps(request | {"run_config": record["run_config"], "seeds": record["seeds"],
                                                  "env_vars": record["env_vars"], "workdir": record["workdir"]}))
    done = subprocess.run([sys.executable, "-m", "reprogrid.investigate.resumecheck", "--child", str(request_path), str(out)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=os.environ | {"REPROGRID_WARM_WORKERS": "0"})
    if done.returncode != 0 or not out.exists():
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise ResumeCheckError(f"re-executing {record['run_config']['run_key']} failed: {last}")
    return out


def render(found: dict) -> str:
    if not found["diverged"]:
        return f"no difference: {found['detail']}"
    return f"resumed after epoch {found['resumed_from_epoch']}, parted in epoch {found['epoch']}\n{found['detail']}"


def _child_main(request_path: str, out_path: str) -> int:
    """In a fresh process: the run's numerics variables first, then torch."""
    from reprogrid.record.envvars import restore_recorded_env_vars, size_thread_pools

    request = json.loads(Path(request_path).read_text())
    restore_recorded_env_vars(request["env_vars"])
    size_thread_pools()
    os.chdir(request["workdir"])
    from reprogrid.investigate.resumetrial import execute

    execute(request, Path(out_path))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m reprogrid.investigate.resumecheck --child REQUEST.json OUT (reprogrid resume-check's own use)")
