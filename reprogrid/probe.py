"""Inside one re-execution of a run (`reprogrid diverge`): fingerprints of every training
step of one epoch, or every operation of one step.

A step begins when the run's loader (`run.loader`) hands out a batch and ends at the
next batch or the epoch's end. Its fingerprints: `input` (the batch), `forward` (the
outputs of the model's outermost forward calls), `backward` (the gradients as the
optimizer is about to step), `optimizer` (the parameters after the step). Hooks are
global (every module's forward, every optimizer's step), so a user's own `fit` is
probed like the built-in loop, provided it uses `run.loader` and `run.epoch_end`.

For the one step asked for, a TorchDispatchMode records every ATen operation: its name,
the module it ran in (forward), the phase, and the shape, dtype and blake2b digest of
the raw bytes of every input and output (order-sensitive, unlike a sum or a norm).

Runs in a process of its own, started by `reprogrid.diverge` (which restores the run's
recorded numerics environment variables before torch loads).
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

UNINITIALISED = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"}


class StopProbe(BaseException):  # noqa: N818 - control flow, not an error
    """The probed epoch or step is done: training stops here (a BaseException, so that
    a loop's own `except Exception` does not swallow it)."""


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.cpu().contiguous().numpy().tobytes()


def digest(value) -> str:
    """blake2b over the raw bytes of every tensor in `value`, in order."""
    hasher = hashlib.blake2b(digest_size=16)
    for leaf in tree_flatten(value)[0]:
        if isinstance(leaf, torch.Tensor):
            hasher.update(str((tuple(leaf.shape), str(leaf.dtype))).encode())
            hasher.update(tensor_bytes(leaf))
    return hasher.hexdigest()


def describe(tensor: torch.Tensor) -> dict:
    return {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."),
            "hash": hashlib.blake2b(tensor_bytes(tensor), digest_size=16).hexdigest()}


class OpRecorder(TorchDispatchMode):
    def __init__(self, probe: Probe):
        super().__init__()
        self.probe, self.ops = probe, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [describe(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        # a fresh allocation's bytes are whatever memory held: not a result to compare
        outputs = [] if name in UNINITIALISED else [describe(t) for t in tree_flatten(out)[0]
                                                     if isinstance(t, torch.Tensor)]
        self.ops.append({"index": len(self.ops), "op": f"aten::{name}",
                         "module": self.probe.module_path(), "phase": self.probe.phase(),
                         "inputs": inputs, "outputs": outputs})
        return out


class Probe:
    """Collects the fingerprints of epoch `epoch`'s steps; with `op_step`, the operations
    of that step of that epoch, and stops training after it."""

    def __init__(self, epoch: int, op_step: int | None = None):
        self.target_epoch, self.op_step = epoch, op_step
        self.epoch, self.step = 1, 0
        self.steps: list[dict] = []
        self.current: dict | None = None
        self.modules: list[str] = []  # the forward call stack, as module paths
        self.names: dict[int, str] = {}
        self.in_optimizer = False
        self.backward_names: dict = {}  # autograd node -> the module whose output it computes
        self.backward_module = ""
        self.recorder: OpRecorder | None = None
        self.ops: list[dict] = []
        self._handles = []

    # --- hooks ------------------------------------------------------------------------

    def install(self) -> None:
        from torch.nn.modules import module as nn_module
        from torch.optim import optimizer

        self._handles = [
            nn_module.register_module_forward_pre_hook(self._forward_pre),
            nn_module.register_module_forward_hook(self._forward_post),
            optimizer.register_optimizer_step_pre_hook(self._optimizer_pre),
            optimizer.register_optimizer_step_post_hook(self._optimizer_post),
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        if self.recorder is not None:
            self.recorder.__exit__(None, None, None)
            self.recorder = None

    def _forward_pre(self, module, args):
        if not self.modules and id(module) not in self.names:  # a new outermost module: name its parts
            root = type(module).__name__
            self.names = {id(m): f"{root}.{name}" if name else root for name, m in module.named_modules()}
        self.modules.append(self.names.get(id(module), type(module).__name__))

    def _forward_post(self, module, args, output):
        name = self.modules.pop()
        if self.recorder is not None and isinstance(output, torch.Tensor) and output.grad_fn is not None:
            # backward reaches this module where the gradient of its output is computed
            node = output.grad_fn
            if node not in self.backward_names:  # the innermost module producing it names it
                self.backward_names[node] = name
                node.register_prehook(lambda grad_outputs, name=name: self._entering_backward_of(name))
        if not self.modules and self.recording:
            self.current["forward"] = digest([self.current.get("forward", ""), output])

    def _entering_backward_of(self, name: str) -> None:
        self.backward_module = name

    def _optimizer_pre(self, optimizer, args, kwargs):
        self.in_optimizer = True
        if self.recording:
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            self.current["backward"] = digest(grads)

    def _optimizer_post(self, optimizer, args, kwargs):
        self.in_optimizer = False
        if self.recording:
            self.current["optimizer"] = digest([p for group in optimizer.param_groups for p in group["params"]])
        if self.recorder is not None:
            self._finish_ops()

    # --- called by reprogrid.fit.Run ---------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.current is not None

    def on_batch(self, batch) -> None:
        self._close_step()
        self.step += 1
        if self.epoch == self.target_epoch:
            self.current = {"step": self.step, "input": digest(batch)}
            if self.step == self.op_step:
                self.recorder = OpRecorder(self)
                self.recorder.__enter__()

    def on_epoch_end(self, epoch: int) -> None:
        self._close_step()
        if self.recorder is not None:
            self._finish_ops()
        if epoch >= self.target_epoch:
            raise StopProbe
        self.epoch, self.step = epoch + 1, 0

    def _close_step(self) -> None:
        if self.current is not None:
            self.steps.append(self.current)
            self.current = None
            if self.op_step is not None and self.step >= self.op_step:
                raise StopProbe

    def _finish_ops(self) -> None:
        recorder, self.recorder = self.recorder, None
        recorder.__exit__(None, None, None)
        self.ops = recorder.ops

    def module_path(self) -> str:
        if self.modules:
            return self.modules[-1]
        return self.backward_module if self.phase() == "backward" else ""

    def phase(self) -> str:
        if self.in_optimizer:
            return "optimizer"
        if self.modules:
            return "forward"
        return "backward" if "forward" in (self.current or {}) else "input"


def probe_run(request: dict) -> dict:
    """Re-execute the run in `request` (run_config, seeds, env_vars) up to `epoch`, and
    return the fingerprints of that epoch's steps (and the ops of `op_step`)."""
    from reprogrid import fit
    from reprogrid.data import load_split
    from reprogrid.library import apply_library
    from reprogrid.train import train_model

    run_config, seeds = request["run_config"], dict(request["seeds"])  # as recorded, unseeded ones too
    apply_library(run_config["library"])
    split = load_split(run_config["dataset"], seeds["split"])
    probe = Probe(request["epoch"], request.get("op_step"))
    fit.PROBE = probe
    probe.install()
    try:
        train_model(run_config, seeds, split)
    except StopProbe:
        pass
    finally:
        probe.remove()
        fit.PROBE = None
    return {"run_key": run_config["run_key"], "epoch": request["epoch"], "steps": probe.steps, "ops": probe.ops}
