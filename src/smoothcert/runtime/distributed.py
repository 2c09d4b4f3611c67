"""torch.distributed plumbing shared by sharded certification and DDP training.

``torchrun`` (one node or many, the same under Slurm or Kubernetes) starts one process per rank
and describes it in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...).
Without those variables everything here is the single-process case: rank 0 of a world of 1,
no process group. Ranks talk over ``gloo`` (CPU, also used for the barriers of sharded runs) or
``nccl`` (DDP on CUDA), always with a timeout; and torchrun stops every rank as soon as one
fails, so a failing rank fails the run instead of leaving the others waiting.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .seeding import resolve_device

TIMEOUT = timedelta(minutes=30)
"""How long a collective of DDP training waits for a slow rank before failing."""


@dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` processes, and its ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints and merged logs and prints summaries."""
        return self.rank == 0


def current_world() -> World:
    """The world torchrun describes in the environment (a world of 1 without torchrun)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"malformed torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {err}") from err
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ValueError(f"malformed torchrun environment: RANK={rank}, WORLD_SIZE={size}, LOCAL_RANK={local}")
    return World(rank, size, local)


def rank_device(device: str | torch.device = "auto", world: World | None = None) -> torch.device:
    """``device`` resolved for this rank: CUDA means ``cuda:LOCAL_RANK`` (one GPU per rank), else CPU."""
    world = current_world() if world is None else world
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return torch.device("cuda", world.local_rank % max(torch.cuda.device_count(), 1))
    return resolved


_CONTROL: list[dist.ProcessGroup] = []
"""The group of [`barrier`][barrier], [`all_reduce_sum`][all_reduce_sum] and [`broadcast_buffers`][broadcast_buffers] inside
[`process_group`][process_group] (empty: the default group)."""


def _group() -> dist.ProcessGroup | None:
    return _CONTROL[-1] if _CONTROL else None


@contextmanager
def process_group(backend: str = "gloo", timeout: timedelta = TIMEOUT) -> Iterator[World]:
    """Join the torchrun process group for the duration of the block (nothing to join without
    torchrun), collectives failing after ``timeout``; yields the ``World``. An exception in the
    block propagates, so the process exits with its error and torchrun stops the other ranks. A block
    that succeeds waits for every rank before leaving the group: a rank tearing down its connections
    while another still holds them (rank 0 saving a checkpoint) can abort in gloo.

    The collectives of this module run in a second group that is destroyed on leaving, before the
    default one. DistributedDataParallel keeps the default group alive after it is destroyed (its
    reducer holds it; torch 2.13), so that group's worker threads outlive ``destroy_process_group``;
    had they run our collectives on tensors that Python owns, a worker still releasing one when the
    interpreter finalizes would abort the process ("terminate called without an active exception",
    the cause of flaky DDP runs under load). Destroying a group nothing else holds joins its workers
    first; DDP's own collectives use tensors that Python never sees."""
    world = current_world()
    if not world.distributed or dist.is_initialized():
        yield world
        return
    dist.init_process_group(backend=backend, timeout=timeout)
    try:
        _CONTROL.append(dist.new_group(backend=backend, timeout=timeout))
        yield world
        dist.barrier(group=_group())
    finally:
        if _CONTROL:
            dist.destroy_process_group(_CONTROL.pop())
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a world of 1)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group=_group())


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over all ranks (``values`` itself in a world of 1)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, group=_group())
    return t.tolist()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm statistics) to every rank: DDP syncs them at the start of
    each forward pass, so after the last training step the ranks' copies differ."""
    if dist.is_available() and dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0, group=_group())
