"""Data-parallel training: the process group, per-rank shards, gradient sync, reductions.

A run with ``WORLD_SIZE > 1`` in its environment (``torchrun``, ``imgrec train --nproc N``,
a PyTorchJob's pods) joins a process group (NCCL on GPU, gloo on CPU); the model is wrapped in
``DistributedDataParallel``; batch norms synchronise their statistics across ranks; each rank
trains on its share of every global batch; only rank 0 writes files::

    world = init_world("auto")                   # World(rank=0, size=1) without torchrun
    model = data_parallel(model, world, device)  # DDP (+ synced batch norm) when size > 1
    for idx in rank_batches(order, batch_size=64, world=world): ...
    if world.main: save_checkpoint(...)

``batch_size`` is per process: 2 processes with 64 each step like 1 process with 128, and the
loss of each rank is weighted by its share of the global batch (:func:`global_weight`), so
the averaged gradient is the 128-image gradient even when the last batch splits unevenly.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from imgrec.errors import ConfigError

TIMEOUT = _dt.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, models and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer", hint="set by torchrun") from None


def env_world() -> World:
    """The world the environment describes (``torchrun``'s ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``); ``World()`` when it describes none."""
    size = _env_int("WORLD_SIZE", 1)
    return World(
        rank=_env_int("RANK", 0),
        size=size,
        local_rank=_env_int("LOCAL_RANK", 0),
        local_size=_env_int("LOCAL_WORLD_SIZE", 1),  # one process per machine without it
    )


def init_world(device: str = "auto") -> World:
    """Join the process group of :func:`env_world` (``MASTER_ADDR``/``PORT`` from torchrun);
    ``World()`` when the environment describes no distributed run.

    The backend is NCCL when the run uses CUDA, else gloo; a CUDA rank takes GPU
    ``local_rank``. Calling it again returns the same world.
    """
    world = env_world()
    if not world.distributed or dist.is_initialized():
        return world
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return world


def close_world(world: World) -> None:
    """Leave the process group (after the last collective call)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def threads_per_process(world: World) -> int:
    """CPU threads for torch: this node's cores shared among its processes."""
    from imgrec.engine.run import auto_threads

    return max(1, auto_threads() // max(1, world.local_size))


def steps_per_epoch(n: int, batch_size: int, world: World) -> int:
    """Optimizer steps per epoch over ``n`` samples (what :func:`rank_batches` yields)."""
    group = batch_size * world.size
    steps = max(1, -(-n // group))
    if steps > 1 and n - (steps - 1) * group < world.size:
        steps -= 1  # a tail smaller than the world joins the batch before it
    return steps


def rank_batches(order: torch.Tensor, batch_size: int, world: World) -> list[torch.Tensor]:
    """This rank's indices for each step of an epoch whose global order is ``order``.

    Every rank draws the same ``order`` (same seed), cuts it into global batches of
    ``batch_size * world.size`` and takes its contiguous share of each, so each sample is
    used exactly once per epoch across ranks. A last batch too small to give every rank a
    sample is merged into the one before; a dataset smaller than the world is an error.
    """
    n = len(order)
    if n < world.size:
        raise ConfigError(
            f"{n} training samples cannot be shared by {world.size} processes",
            hint="use fewer processes (--nproc) or more data",
        )
    steps = steps_per_epoch(n, batch_size, world)
    group = batch_size * world.size
    out = []
    for step in range(steps):
        end = n if step == steps - 1 else (step + 1) * group
        out.append(order[step * group : end].tensor_split(world.size)[world.rank])
    return out


def global_weight(size: int, world: World) -> float:
    """The factor for this rank's mean loss so DDP's average is the global batch's mean:
    ``size * world / global size`` (1.0 when every rank holds an equal share)."""
    if not world.distributed:
        return 1.0
    total = all_sum([float(size)])[0]
    return size * world.size / max(total, 1.0)


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (``values`` itself on one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, world: World) -> bool:
    """True when ``flag`` is true on any rank (so every rank stops together)."""
    return flag if not world.distributed else all_sum([float(flag)])[0] > 0


def reduce_figures(figures: dict[str, Any], world: World, count_key: str = "val_n") -> dict:
    """Validation figures of all ranks combined: a mean weighted by ``figures[count_key]``
    (each rank validated its shard), or the plain mean of ranks that validated the same data.
    ``count_key`` is dropped from the result."""
    figures = dict(figures)
    count = float(figures.pop(count_key, 1.0))
    if not world.distributed:
        return figures
    keys = sorted(k for k, v in figures.items() if isinstance(v, float | int))
    sums = all_sum([count] + [float(figures[k]) * count for k in keys])
    return {**figures, **{k: s / max(sums[0], 1e-12) for k, s in zip(keys, sums[1:], strict=True)}}


def shard(items: Sequence[Any], world: World) -> list[Any]:
    """Every ``world.size``-th item from ``rank`` (a rank's part of an evaluation set)."""
    return list(items[world.rank :: world.size])


def barrier(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the gradients (every rank's
    loss depends on every rank's input through the sum)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics are computed over the global batch on CPU.

    ``nn.SyncBatchNorm`` only runs on GPUs; this one all-reduces per-channel sums with a
    differentiable all-reduce, so gradients flow through
    the global mean and variance exactly as on GPU. Same parameters and buffers as
    ``BatchNorm2d`` (checkpoints and model directories load into either).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, C, H, W)
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        n_local = xf.numel() // xf.shape[1]
        # per-rank mean and centred sum of squares (accurate in fp32), combined in float64:
        # E[x^2] - E[x]^2 over ~1e5 fp32 values per channel lost ~1e-5 relative precision
        local_mean = xf.mean((0, 2, 3))
        local_m2 = ((xf - local_mean[None, :, None, None]) ** 2).sum((0, 2, 3))
        m, m2 = local_mean.double(), local_m2.double()
        count = torch.full((1,), float(n_local), dtype=torch.float64)
        total = _AllReduceSum.apply(torch.cat([m * n_local, m2 + n_local * m * m, count]))
        c = self.num_features
        n = float(total[-1].detach())
        mean64 = total[:c] / n
        var = (total[c : 2 * c] / n - mean64 * mean64).clamp(min=0.0).float()
        mean = mean64.float()
        if self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None and self.num_batches_tracked is not None
            with torch.no_grad():
                mom = self.momentum if self.momentum is not None else 0.1
                unbiased = var * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - mom).add_(mean.detach(), alpha=mom)
                self.running_var.mul_(1 - mom).add_(unbiased.detach(), alpha=mom)
                self.num_batches_tracked.add_(1)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its batch norms synchronised across ranks (``nn.SyncBatchNorm`` on GPU,
    :class:`GlooSyncBatchNorm` on CPU); a model without batch norm is returned as is."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            synced = GlooSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            # the same parameter and buffer objects: an optimizer built before still holds them
            synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            synced.train(child.training)
            setattr(model, name, synced)
        else:
            sync_batchnorm(child, device)
    return model


def data_parallel(
    model: nn.Module, world: World, device: torch.device, *, unused_parameters: bool = False
) -> nn.Module:
    """``DistributedDataParallel(model)`` with synced batch norm when ``world`` has several
    processes; ``model`` itself otherwise. Parameters start equal: DDP broadcasts rank 0's.
    ``unused_parameters``: some trainable parameters may get no gradient in a step."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    model = sync_batchnorm(model, device)
    ids = [device.index if device.index is not None else world.local_rank]
    return DistributedDataParallel(
        model,
        device_ids=ids if device.type == "cuda" else None,
        find_unused_parameters=unused_parameters,
    )


class LossModule(nn.Module):
    """A network whose ``forward`` is its training loss, ``loss_fn(*inputs)``: the module DDP
    wraps when a task computes its loss outside ``network.forward`` (detection), so the
    gradients are synchronised. Checkpoints hold ``network``'s own state (see :func:`unwrap`)."""

    def __init__(self, network: nn.Module, loss_fn: Any) -> None:
        super().__init__()
        self.network, self.loss_fn = network, loss_fn

    def forward(self, *inputs: Any) -> Any:
        return self.loss_fn(*inputs)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside ``DistributedDataParallel`` and :class:`LossModule` wrappers."""
    from torch.nn.parallel import DistributedDataParallel

    model = model.module if isinstance(model, DistributedDataParallel) else model
    return model.network if isinstance(model, LossModule) else model


def broadcast_figures(figures: dict[str, Any], world: World) -> dict[str, Any]:
    """Rank 0's ``figures`` on every rank (a figure only rank 0 computes, such as mAP over the
    whole val set, which is not a mean of per-shard values)."""
    if not (world.distributed and dist.is_initialized()):
        return figures
    box = [figures if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return dict(box[0] or {})
