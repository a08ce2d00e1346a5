"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``)."""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["barrier", "init_process_group", "rank_and_world", "train_device", "wrap"]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_process_group(device: str | None) -> bool:
    """Join the process group when launched by torchrun (``WORLD_SIZE > 1``): NCCL on GPUs,
    gloo on CPUs. Returns whether a group was joined."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    use_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def train_device(device: str | None, world: int) -> torch.device:
    """The device of this process: ``device``, or CUDA when available; the local GPU of a
    rank under torchrun.

    Raises:
        ConfigError: CUDA requested but not available.
    """
    from hepx.device import checked_device

    dev = checked_device(device, default="cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev


def wrap(step: nn.Module, world: int, *, find_unused: bool) -> nn.Module:
    """``step`` in DistributedDataParallel when several processes train."""
    if world <= 1:
        return step
    return nn.parallel.DistributedDataParallel(step, find_unused_parameters=find_unused)


def barrier(world: int) -> None:
    """Wait for every rank (no-op alone)."""
    if world > 1:
        torch.distributed.barrier()
