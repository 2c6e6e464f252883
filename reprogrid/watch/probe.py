"""Inside one re-execution of a run (`reprogrid diverge`): fingerprints of every training
step of one epoch, or every operation of one step.

A step is one optimizer step (torch's global optimizer step hooks see every loop, the
built-in one and a fit's own with its own DataLoader): it begins where the previous step
ended (or the epoch began) and ends when the optimizer has stepped. Its fingerprints:
`input` (what the outermost modules' forward calls were given), `forward` (what they
returned), `backward` (the gradients as the optimizer is about to step), `optimizer`
(the parameters after the step). Work after an epoch's last step (a forward call, say)
is a last, partial step.

For the one step asked for, a TorchDispatchMode records every ATen operation from the
step's beginning (so a loader's shuffle or an augmentation drawn before the forward call
is seen too): its name, the module it ran in (forward), the phase, the shape, dtype and
blake2b digest of the raw bytes of every tensor input and output, a digest of its other
arguments, and for a random operation the generator it drew from (a generator `run`
handed out, by name, or the global one).

Installed in a re-execution of its own: a run of reprogrid's training
(reprogrid.investigate.probed_run, where the run tells the probe of its start, generators and
epochs' ends) or a training.command's (`watch_command`, from the watch: steps counted
across the whole run, no epochs).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from reprogrid.watch.steps import raw_array

UNINITIALISED = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"}
GLOBAL = "global"  # a random op that drew from the device's default generator


class StopProbe(BaseException):  # noqa: N818 - control flow, not an error
    """The probed epoch or step is done: training stops here (a BaseException, so that
    a loop's own `except Exception` does not swallow it)."""


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    return raw_array(tensor).tobytes()


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


def _plain(leaf) -> bool:
    return isinstance(leaf, (int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout,
                             torch.memory_format))


class OpRecorder(TorchDispatchMode):
    def __init__(self, probe: Probe):
        super().__init__()
        self.probe, self.ops = probe, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = tree_flatten((args, kwargs))[0]
        inputs = [describe(t) for t in leaves if isinstance(t, torch.Tensor)]
        # slice bounds, fill values, sizes: an op fed other numbers is not fed the same inputs
        scalars = hashlib.blake2b(repr([leaf for leaf in leaves if _plain(leaf)]).encode(), digest_size=8).hexdigest()
        generators = [leaf for leaf in leaves if isinstance(leaf, torch.Generator)]
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        # a fresh allocation's bytes are whatever memory held: not a result to compare
        outputs = [] if name in UNINITIALISED else [describe(t) for t in tree_flatten(out)[0]
                                                     if isinstance(t, torch.Tensor)]
        self.ops.append({"index": len(self.ops), "op": f"aten::{name}", "module": self.probe.module_path(),
                         "phase": self.probe.phase(), "inputs": inputs, "scalars": scalars, "outputs": outputs,
                         "generator": self.probe.generator_name(generators[0] if generators else None)})
        return out


class Probe:
    """Collects the fingerprints of epoch `epoch`'s steps; with `op_step`, the operations
    of that step of that epoch, and stops training after it."""

    def __init__(self, epoch: int, op_step: int | None = None, until: int | None = None):
        self.target_epoch, self.op_step = epoch, op_step
        self.until = until  # a command's re-execution stops after this step (its steps are counted across the run)
        self.on_stop = None  # called before training stops (a command's re-execution writes what it saw, and exits)
        self.epoch, self.step = 1, 1  # the step in progress
        self.steps: list[dict] = []
        self.current: dict = {}
        self.epoch_weights: str | None = None  # the weights' fingerprint after the target epoch
        self.modules: list[str] = []  # the forward call stack, as module paths
        self.names: dict[int, str] = {}
        self.generators: dict[int, str] = {}  # id -> the name run handed it out under
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

    @property
    def recording(self) -> bool:
        return self.epoch == self.target_epoch

    def _forward_pre(self, module, args):
        if not self.modules:
            if id(module) not in self.names:  # a new outermost module: name its parts
                root = type(module).__name__
                self.names = {id(m): f"{root}.{name}" if name else root for name, m in module.named_modules()}
            if self.recording:
                self.current["input"] = digest([self.current.get("input", ""), args])
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
            self.steps.append({"step": self.step, **self.current})
        self.current = {}
        if self.recorder is not None:
            self._finish_ops()
            self._stop()
        if self.until is not None and self.step >= self.until:
            self._stop()
        self.step += 1
        self._begin_step()

    def _stop(self):
        if self.on_stop is not None:
            self.on_stop(self)
        raise StopProbe

    # --- called by reprogrid.training.context.Run ---------------------------------------------------

    def name_generator(self, generator, name: str) -> None:
        self.generators[id(generator)] = name

    def generator_name(self, generator) -> str:
        return GLOBAL if generator is None else self.generators.get(id(generator), "local")

    def on_training_start(self) -> None:
        """The global generators have just passed to the training streams: epoch 1 begins."""
        self._begin_step()

    def on_epoch_end(self, epoch: int, weights: str) -> None:
        if self.recording:
            if self.current:  # work after the epoch's last optimizer step
                self.steps.append({"step": self.step, **self.current})
            self.epoch_weights = weights
        if self.recorder is not None:
            self._finish_ops()
        if epoch >= self.target_epoch:
            self._stop()
        self.epoch, self.step, self.current = epoch + 1, 1, {}
        self._begin_step()

    def _begin_step(self) -> None:
        if self.recording and self.step == self.op_step and self.recorder is None:
            self.recorder = OpRecorder(self)
            self.recorder.__enter__()

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
        return "backward" if "forward" in self.current else "input"


def watch_command(request: dict) -> None:
    """In a training.command's re-execution (the watch calls it before the script's first
    line): fingerprint every optimizer step, the ops of `op_step` too, then write them to
    `request["out"]` and end the process after step `until`. A script that ends earlier
    writes what it saw at exit, marked `ended`."""
    probe = Probe(1, request.get("op_step"), request["until"])

    def write(probe: Probe, ended: bool) -> None:
        Path(request["out"]).write_text(json.dumps({"steps": probe.steps, "ops": probe.ops, "ended": ended}))

    def stop(probe: Probe) -> None:
        write(probe, False)
        os._exit(0)  # mid-step: no script code may run on (nor catch a StopProbe) past what was asked

    probe.on_stop = stop
    atexit.register(lambda: write(probe, True))
    probe.install()
    probe.on_training_start()  # step 1 begins with the script's first line
