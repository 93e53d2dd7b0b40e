"""Data-parallel training across processes with ``torch.distributed``.

How data parallelism applies to a memory-based model: the node state (memories, pending
events, recent neighbours, online features, the negative sampler's history) is a
function of the events observed and of the weights. Every rank keeps a full replica of
that state and reads the whole stream. Each global training batch is scored from the
state before it, as in one process; rank ``r`` computes the losses of its share of the
batch's events (contiguous slices of ``B / N`` events); the gradients are averaged over
the ranks with one all-reduce per step (DDP's reduction, see
:meth:`DistContext.average_gradients`), so every rank takes the same optimiser step and
the weights stay identical. Then every rank observes the *whole* batch. With identical
weights and identical events the replicas stay identical without exchanging any state;
only gradients (about 0.5 MB per step at the default sizes) cross between processes.
Validation runs on rank 0, and its decision (best epoch, early stop) is broadcast so
every rank follows the same schedule.

Processes: one per GPU with NCCL on CUDA; on CPU (``device='cpu'``) the same code runs
as CPU processes with the gloo backend (this is how the tests and CI run it).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sim.errors import SignsimError

__all__ = [
    "DistContext",
    "free_port",
    "launch",
    "parameter_digest",
    "plan_processes",
]


@dataclass
class DistContext:
    """This process's place in a data-parallel group.

    Attributes:
        rank: This process's rank.
        world: Number of processes.
        device: This rank's device.
    """

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0 (validation, checkpoint, database writes)."""
        return self.rank == 0

    def average_gradients(self, model: nn.Module) -> None:
        """Average every parameter's gradient over the ranks (one flat all-reduce).

        A parameter without a gradient on this rank (the memory updaters before any node
        has a pending event) contributes zeros, so every rank ends with the same gradient
        for every parameter and takes the same optimiser step. This is the all-reduce of
        :class:`~torch.nn.parallel.DistributedDataParallel`, done once per step by hand:
        the memory model's autograd graph changes from step to step (which parameters it
        reaches depends on the state), which DDP's unused-parameter search rejects.
        """
        params = [p for p in model.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def share(self, start: int, end: int) -> tuple[int, int]:
        """This rank's contiguous share of the events ``[start, end)`` of a global batch."""
        n = end - start
        a = start + (n * self.rank) // self.world
        b = start + (n * (self.rank + 1)) // self.world
        return a, b

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank."""
        buf = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(buf, src=0)
        return [float(x) for x in buf.cpu().tolist()]

    def gather_digests(self, digest: str) -> list[str]:
        """Every rank's ``digest`` (hex strings of equal length), in rank order."""
        raw = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8,
                           device=self._comm_device())
        out = [torch.zeros_like(raw) for _ in range(self.world)]
        dist.all_gather(out, raw)
        return [bytes(t.cpu().tolist()).hex() for t in out]

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in ``named_parameters`` order."""
    import hashlib

    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def plan_processes(gpus: int, device: str) -> tuple[str, list[torch.device]]:
    """Backend and per-rank devices for ``--gpus N``.

    ``--gpus N`` means N CUDA GPUs (NCCL). Without CUDA, ``--device cpu`` runs N CPU
    processes with gloo (for testing the same code path); ``--device auto`` or ``cuda``
    without a GPU is an error, so asking for GPUs never silently trains on the CPU.

    Raises:
        SignsimError: N < 1, more GPUs than present, or GPUs requested where there are none.
    """
    if gpus < 1:
        raise SignsimError(f"--gpus must be at least 1, got {gpus}.")
    if device == "cpu":
        return "gloo", [torch.device("cpu")] * gpus
    if device not in ("auto", "cuda"):
        raise SignsimError(f"--gpus needs --device auto, cuda or cpu, not '{device}'.")
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have == 0:
        raise SignsimError(
            f"--gpus {gpus} asks for {gpus} CUDA GPUs but none is available; add "
            f"--device cpu to run {gpus} data-parallel CPU processes (gloo) instead.")
    if gpus > have:
        raise SignsimError(f"--gpus {gpus} asks for more GPUs than the {have} present.")
    return "nccl", [torch.device("cuda", i) for i in range(gpus)]


def free_port() -> int:
    """A free TCP port on the loopback interface for the rendezvous."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process_group(backend: str, port: int, rank: int, world: int) -> Iterator[None]:
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        yield
        # Every rank waits here until its earlier collectives are done and released. A
        # gloo worker thread releases a finished collective's tensors (Python objects)
        # after the call returned; if that happens while the interpreter is exiting, the
        # thread cannot take the GIL, is unwound by pthread_exit and aborts the process
        # (std::terminate, seen in about one run in four of the 2-process tests).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _entry(rank: int, fn: Callable[..., Any], backend: str, port: int,
           devices: list[torch.device], threads: int, args: tuple[Any, ...]) -> None:
    if devices[rank].type == "cuda":
        torch.cuda.set_device(devices[rank])
    else:
        torch.set_num_threads(threads)
    with _process_group(backend, port, rank, len(devices)):
        fn(DistContext(rank=rank, world=len(devices), device=devices[rank]), *args)


def launch(fn: Callable[..., Any], gpus: int, device: str, args: tuple[Any, ...]) -> None:
    """Run ``fn(ctx, *args)`` in ``gpus`` spawned processes joined in one process group.

    ``fn`` must be a module-level function (it is pickled to the children). CPU processes
    share the machine's cores (each gets ``max(1, cores // N)`` threads).

    Raises:
        SignsimError: Bad ``gpus``/``device`` (see :func:`plan_processes`), or a rank that
            failed (its error is reported).
    """
    backend, devices = plan_processes(gpus, device)
    threads = max(1, (os.cpu_count() or 1) // gpus)
    try:
        mp.spawn(_entry, args=(fn, backend, free_port(), devices, threads, args),
                 nprocs=gpus, join=True)
    except mp.ProcessRaisedException as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise SignsimError(f"Distributed training failed on one of {gpus} processes: "
                           f"{last}") from None

