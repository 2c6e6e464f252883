"""Reading a divergence's cause from what the re-executions saw (reprogrid.investigate
.diverge runs them): the first step whose fingerprints differ, the first operation whose
output differs, the generator a random op drew from, what differs between two runs'
configs. A cause is one of CAUSES and is named only where it was seen; otherwise the
finding says "could not localise: ..." and names none."""

from __future__ import annotations

import difflib

from reprogrid.training.prediction import unseeded_drawn

CAUSES = ("initialization", "input", "random_op", "nondeterministic_op", "implementation")
PHASES = ("input", "forward", "backward", "optimizer")
RANDOM_OPS = {"bernoulli", "bernoulli_", "native_dropout", "dropout", "feature_dropout", "alpha_dropout", "rand",
              "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "normal", "normal_",
              "uniform_", "random_", "multinomial", "exponential_", "geometric_", "cauchy_", "log_normal_"}


def first_differing_step(steps_a: list[dict], steps_b: list[dict]) -> tuple[int, str] | None:
    for a, b in zip(steps_a, steps_b):
        for phase in PHASES:
            if a.get(phase) != b.get(phase):
                return a["step"], phase
    return None


def signature(op: dict) -> tuple:
    return op["op"], op["module"], op["phase"], tuple(tuple(t["shape"]) for t in op["inputs"])


def root_cause_op(ops_a: list[dict], ops_b: list[dict]) -> tuple[dict, dict, bool] | None:
    """Align the two op streams and return the first aligned pair whose outputs differ,
    and whether their inputs matched (then it is the root cause)."""
    matcher = difflib.SequenceMatcher(a=[signature(o) for o in ops_a], b=[signature(o) for o in ops_b],
                                      autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            a, b = ops_a[block.a + offset], ops_b[block.b + offset]
            if [t["hash"] for t in a["outputs"]] != [t["hash"] for t in b["outputs"]]:
                same_inputs = [t["hash"] for t in a["inputs"]] == [t["hash"] for t in b["inputs"]]
                return a, b, same_inputs and a.get("scalars") == b.get("scalars")
    return None


def differing_source(records: list[dict], *sources: str) -> str | None:
    return next((s for s in sources if records[0]["seeds"][s] != records[1]["seeds"][s]), None)


def _unseeded(records: list[dict]) -> list[str]:
    found = []
    for record in records:
        for generator in unseeded_drawn(record["run_config"], record["train"].get("rng", {})):
            if generator not in found:
                found.append(generator)
    return found


def same_library(records: list[dict]) -> bool:
    a, b = (r["tags"] for r in records)
    return (a.get("reprogrid.libconf") == b.get("reprogrid.libconf")
            and a.get("reprogrid.hash.library") == b.get("reprogrid.hash.library"))


def result(diverged: bool, cause: str | None = None, generator: str | None = None, detail: str = "",
           epoch: int | None = None, step: int | None = None, phase: str | None = None, op: str | None = None,
           module: str | None = None) -> dict:
    if cause is not None and cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r}")
    return {"diverged": diverged, "epoch": epoch, "step": step, "phase": phase, "op": op, "module": module,
            "cause": cause, "generator": generator, "detail": detail}


def not_localised(detail: str, epoch: int | None = None, step: int | None = None, phase: str | None = None) -> dict:
    """Diverged, but no cause was observed: say so, never guess one."""
    return result(True, detail=f"could not localise: {detail}", epoch=epoch, step=step, phase=phase)


# generators run hands out, by the name it gives them, and the source each draws from
HANDED_OUT_SOURCES = {"loader.order": "order", "loader.workers": "augment"}


def random_generator(records: list[dict], drawn_from: str | None) -> tuple[str | None, str]:
    """The generator a random op drew from, named by its source where the runs' seeds of
    that source differ; and those words for the detail."""
    if "command" in records[0]["train"]:
        return command_random_generator(records, drawn_from)
    if drawn_from in (None, "global"):
        device = "cuda" if records[0]["run_config"]["library"]["device"] == "cuda" else "torch"
        source = differing_source(records, "dropout")
        if source:
            return source, f"{device}'s global generator, seeded by `dropout`, whose seeds differ"
        unseeded = [g for g in _unseeded(records) if g in ("torch", "cuda")]
        return device, f"{device}'s global generator" + (", unseeded" if unseeded else "")
    if drawn_from == "local":
        return None, "a generator the loop made itself"
    source = HANDED_OUT_SOURCES.get(drawn_from) or drawn_from.split(".")[-1].split("#")[0]
    differs = source in records[0]["seeds"] and records[0]["seeds"][source] != records[1]["seeds"][source]
    return source, f"run.{drawn_from}" + (f", whose `{source}` seeds differ" if differs else "")


def input_generator(records: list[dict]) -> str | None:
    """Where values that enter torch from outside (NumPy, Python, a file) differ: an
    unseeded global generator the runs drew from, else a source whose seeds differ and
    that feeds NumPy's or Python's generators."""
    if "command" in records[0]["train"]:
        return next(iter(command_varied(records) - {"script", "torch"}), None)
    return next(iter(_unseeded(records)), None) or differing_source(records, "augment", "order", "sampling")


# what a run trains; its seeds, library configuration and cell are what diverge localises
TRAINED = ("dataset", "model", "training", "augment", "evaluation")


def _flat(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix: node}
    return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}.{key}" if prefix else key).items()}


def what_differs(records: list[dict]) -> str | None:
    """The runs train different things (their config, data or code differ): say what,
    before anything is re-executed; None when they train the same."""
    a, b = (r["run_config"] for r in records)
    flat_a = _flat({section: a.get(section) for section in TRAINED})
    flat_b = _flat({section: b.get(section) for section in TRAINED})
    keys = sorted(k for k in set(flat_a) | set(flat_b) if flat_a.get(k) != flat_b.get(k))
    if keys:
        return "config differs: " + ", ".join(f"{k} ({flat_a.get(k)!r} against {flat_b.get(k)!r})" for k in keys)
    hashes = [r["train"]["hashes"] for r in records]
    changed = [name for name in ("data", "code") if hashes[0].get(name) != hashes[1].get(name)]  # a command: no data
    return f"{' and '.join(changed)} differ{'s' if len(changed) == 1 else ''}" if changed else None


def root_cause(records: list[dict], ops: list[dict], epoch: int, step: int, phase: str) -> dict:
    """The cause, from the first aligned operation of the step whose outputs differ."""
    found_op = root_cause_op(ops[0]["ops"], ops[1]["ops"])
    if found_op is None:
        of_epoch = f" of epoch {epoch}" if epoch is not None else ""
        return not_localised(f"step {step}{of_epoch} differs in {phase}, but no operation of the step gives "
                             "different outputs in the two runs", epoch, step, phase)
    op_a, _, inputs_match = found_op
    name, where = op_a["op"], op_a["module"] or None
    if name.removeprefix("aten::") in RANDOM_OPS:
        generator, words = random_generator(records, op_a.get("generator"))
        cause, detail = "random_op", f"{name} drew differently (from {words})"
    elif not inputs_match:
        generator, cause = input_generator(records), "input"
        origin = f" (from `{generator}`{first_drawn_at(records, generator)})" if generator else ""
        detail = (f"{name} is the first operation whose output differs; its inputs already differed, coming from "
                  f"outside torch's operations{origin}")
    elif same_library(records):
        generator, cause = None, "nondeterministic_op"
        detail = f"{name} gave different outputs from identical inputs under one library configuration"
    else:
        generator, cause = None, "implementation"
        detail = (f"{name} gave different outputs from identical inputs under library configurations "
                  f"{records[0]['tags'].get('reprogrid.libconf')} and {records[1]['tags'].get('reprogrid.libconf')}")
    where_words = f", in module {where}" if where else ""
    of_epoch = f" of epoch {epoch}" if epoch is not None else ""  # a command's steps are counted across the run
    return result(True, cause, generator, f"{detail}, in {op_a['phase']} of step {step}{of_epoch}{where_words}",
                  epoch, step, op_a["phase"], name, where)




def command_varied(records: list[dict]) -> set[str]:
    """The sources that made either training.command run's replicates differ (its record's
    `varied_sources`: a generator it drew from, governed by a source not fixed)."""
    return {source for record in records for source in record["train"].get("varied_sources", [])}


def command_random_generator(records: list[dict], drawn_from: str | None) -> tuple[str | None, str]:
    """A training.command run's random op: torch's global generator, seeded by the script
    with its `{seed}` or by reprogrid before line one; or a generator the script made."""
    if drawn_from not in (None, "global"):
        return None, "a generator the script made itself"
    source = differing_source(records, "script", "torch")
    if source:
        return "torch", f"torch's global generator, seeded from `{source}`, whose seeds differ"
    return "torch", "torch's global generator"


def first_drawn_at(records: list[dict], generator: str) -> str:
    """Where a training.command run first drew from `generator` (the watch's record), in words."""
    draws = [e for e in records[0]["train"].get("first_draws", []) if e["generator"] == generator]
    if not draws:
        return ""
    path, _, line = draws[-1]["where"].rpartition(":")
    return f", drawn at {path.rsplit('/', 1)[-1]}:{line} by {draws[-1]['call']}"
