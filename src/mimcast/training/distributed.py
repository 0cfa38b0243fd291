"""torch.distributed glue: process group from torchrun's environment, DDP wrapping, reductions.

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op, so the same code
runs on a laptop CPU and on many GPUs. gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
import re

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mimcast.errors import ConfigError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device: str, key: str = "--device") -> None:
    """A ConfigError unless `device` is auto, cpu, cuda or cuda:N."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N, got {device!r}")


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes (if any); return this process's device.

    "auto" is CUDA when a GPU is available, else the CPU. Under torchrun each process uses the
    GPU of its LOCAL_RANK, also when called again (e.g. by the evaluation that follows training
    in the same process). A CUDA device on a machine without one is a ConfigError.
    """
    check_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device} was asked for, but no CUDA device is available")
    index = int(device.split(":")[1]) if ":" in device else 0
    if device.startswith("cuda") and index >= torch.cuda.device_count():
        raise ConfigError(f"device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if is_distributed():
        return f"cuda:{local}" if device.startswith("cuda") else device
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return device


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running under torchrun, else the model itself."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum a tensor over all processes in place; every process must call it.

    NCCL reduces only CUDA tensors: a CPU tensor (metric sums) goes through this rank's GPU.
    """
    if not is_distributed():
        return t
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        buf = t.to(f"cuda:{torch.cuda.current_device()}")
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        t.copy_(buf.cpu())
    else:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is true on any (e.g. a stop signal seen by one rank)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    return bool(all_reduce_sum(t).item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
