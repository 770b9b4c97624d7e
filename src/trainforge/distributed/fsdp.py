"""FSDP (``strategy: fsdp``) with FSDP2's ``fully_shard``: sharding policy and full (canonical) state dicts.

The model is sharded in place: each *unit* (a transformer block, see ``shard_units``) and then the root become
``FSDPModule``s whose parameters are ``DTensor`` shards (dim 0 split over the ranks). Forward all-gathers a unit's
parameters just before it runs and frees them after; backward reduce-scatters its gradients.

Checkpoints stay in the one-process format, so they load on any world size and without FSDP:

* model: the full state dict with the plain module's keys, gathered to rank 0 on the CPU;
* optimizer: the full optimizer state, re-keyed from parameter names to the integer ids that
  ``optimizer.state_dict()`` of the unsharded model uses (same groups, same order).

Loading takes the same one-process format: rank 0's copy (read from the checkpoint file, or the NaN guard's in-memory
snapshot, which only rank 0 holds whole) is broadcast and every rank keeps its shard.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn

# A child holding at least this share of the model's parameters is its own FSDP unit (models without ModuleLists).
MIN_UNIT_FRACTION = 0.1


def is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(getattr(model, "_orig_mod", model), FSDPModule)


def _shared_outside(unit: nn.Module, owners: Mapping[int, int]) -> bool:
    """True when a parameter of ``unit`` is also registered outside it (tied weights must share one FSDP unit)."""
    inside: dict[int, int] = defaultdict(int)
    for _, p in unit.named_parameters(remove_duplicate=False):
        inside[id(p)] += 1
    return any(owners[pid] > n for pid, n in inside.items())


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The submodules sharded as their own units before the root.

    * ``model.fsdp_units()`` when the model defines it (the user's own choice);
    * otherwise the items of the outermost ``nn.ModuleList``s (transformer blocks);
    * otherwise the direct children holding at least ``MIN_UNIT_FRACTION`` of the parameters.

    Units without parameters, and units whose parameters are tied to a module outside them, are left to the root.
    """
    custom = getattr(model, "fsdp_units", None)
    if callable(custom):
        return list(custom())
    owners: dict[int, int] = defaultdict(int)
    for _, p in model.named_parameters(remove_duplicate=False):
        owners[id(p)] += 1
    candidates: list[nn.Module] = []

    def lists(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, nn.ModuleList):
                candidates.extend(child)
            else:
                lists(child)

    lists(model)
    if not candidates:
        total = sum(p.numel() for p in model.parameters())
        candidates = [c for c in model.children() if sum(p.numel() for p in c.parameters()) >= MIN_UNIT_FRACTION * total]
    return [u for u in candidates if any(True for _ in u.parameters()) and not _shared_outside(u, owners)]


def mixed_precision(precision: str, device: torch.device) -> Any:
    """FSDP2's ``MixedPrecisionPolicy`` for ``precision`` on CUDA (bf16/fp16 compute, fp32 gradient reduction);
    None on CPU and for fp32 (autocast alone decides there)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type != "cuda" or precision not in ("bf16-mixed", "fp16-mixed"):
        return None
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def check_backend(device: torch.device) -> None:
    """Refuse the one combination seen to crash: FSDP over gloo with CUDA tensors (several processes sharing a GPU
    through ``TRAINFORGE_DIST_BACKEND=gloo``) died with SIGSEGV in its first step (torch 2.11, H200)."""
    if device.type == "cuda" and dist.is_initialized() and dist.get_world_size() > 1 and dist.get_backend() == "gloo":
        from trainforge.errors import ConfigError

        raise ConfigError(["strategy: 'fsdp' on cuda needs the nccl backend (one GPU per process): with gloo "
                           "(TRAINFORGE_DIST_BACKEND=gloo, e.g. processes sharing one GPU) sharded training on "
                           "CUDA tensors crashed every process (SIGSEGV) in its first steps when checked (torch "
                           "2.11, tests/distributed/gpu_fsdp_check.py). Fix: unset TRAINFORGE_DIST_BACKEND and "
                           "run one process per GPU, use strategy='ddp' to share a GPU, or device='cpu'."],
                          what="distributed")


def shard(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """``fully_shard`` each unit, then the root, in place (over all ranks of the default process group)."""
    from torch.distributed.fsdp import fully_shard

    policy = mixed_precision(precision, device)
    kwargs: dict[str, Any] = {"mp_policy": policy} if policy is not None else {}
    for unit in shard_units(model):
        fully_shard(unit, **kwargs)
    fully_shard(model, **kwargs)
    return model


def _fsdp_modules(model: nn.Module) -> Iterator[Any]:
    from torch.distributed.fsdp import FSDPModule

    return (m for m in model.modules() if isinstance(m, FSDPModule))


def reshard(model: nn.Module) -> None:
    """Free the unsharded parameters a forward left behind (the root keeps them after forward by default)."""
    for module in _fsdp_modules(model):
        module.reshard()


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Reduce-scatter gradients in this backward (True) or accumulate them unsharded (False: a micro-step)."""
    setter = getattr(model, "set_requires_gradient_sync", None)
    if callable(setter):
        setter(enabled)


def _options(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_model_state(model: nn.Module) -> dict[str, Tensor]:
    """The whole model's state dict on rank 0 (CPU, the plain module's keys); ``{}`` on other ranks. Collective."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    reshard(model)
    return cast(dict[str, Tensor], get_model_state_dict(model, options=_options(cpu_offload=True)))


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's whole state on rank 0 in ``optimizer.state_dict()``'s one-process format (parameters as
    integer ids in group order); on other ranks the groups without state. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    groups_only = {"state": {}, "param_groups": [dict(g) for g in optimizer.state_dict()["param_groups"]]}
    if not optimizer.state:
        # Before the first step: get_optimizer_state_dict would initialise the state with a zero-gradient step,
        # which advances Adam's step count (the next real step would differ from one process's).
        return groups_only
    reshard(model)
    named: dict[str, Any] = cast(dict[str, Any], get_optimizer_state_dict(model, optimizer,
                                                                          options=_options(cpu_offload=True)))
    if not named:  # not rank 0: the groups' settings only (what the NaN guard reads and scales), no state
        return groups_only
    index: dict[str, int] = {}
    groups = []
    for group in named["param_groups"]:
        ids = []
        for fqn in group["params"]:
            index.setdefault(fqn, len(index))
            ids.append(index[fqn])
        groups.append({**group, "params": ids})
    return {"state": {index[fqn]: value for fqn, value in named["state"].items()}, "param_groups": groups}


def _is_rank0() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _rank0_has_state(has: bool) -> bool:
    """Rank 0's answer, on every rank (only rank 0 holds an in-memory snapshot's state)."""
    if not dist.is_initialized():
        return has
    flag = [has]
    dist.broadcast_object_list(flag, src=0)
    return bool(flag[0])


def load_full_model_state(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a full (one-process) state dict into the sharded model: rank 0's ``state`` is broadcast and every
    rank keeps its shard (other ranks' ``state`` is not read). Collective."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    reshard(model)
    set_model_state_dict(model, dict(state) if _is_rank0() else {}, options=_options(broadcast_from_rank0=True))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Load a one-process ``optimizer.state_dict()`` into the optimizer of the sharded model: rank 0's is
    broadcast (as for the model). Collective.

    The integer ids are mapped to parameter names through this optimizer's groups (the same grouping and order as
    the unsharded model's, which ``optimizer.load_state_dict`` assumes too).
    """
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    saved_groups = state["param_groups"]  # every rank checks (they all hold the groups): all raise together
    if len(saved_groups) != len(optimizer.param_groups) or any(
            len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, optimizer.param_groups)):
        raise ValueError("loaded state dict has a different number of parameter groups or parameters")
    if not _rank0_has_state(bool(state["state"])):  # saved before the first step: no state to shard
        optimizer.state.clear()  # (set_optimizer_state_dict would create one with a zero-gradient step)
        for own, saved in zip(optimizer.param_groups, saved_groups):
            own.update({k: v for k, v in saved.items() if k != "params"})
        return
    reshard(model)
    named: dict[str, Any] = {}
    if _is_rank0():
        names = _param_names(model)
        fqn: dict[int, str] = {}
        groups = []
        for saved, own in zip(saved_groups, optimizer.param_groups):
            for pid, param in zip(saved["params"], own["params"]):
                fqn[pid] = names[id(param)]
            groups.append({**saved, "params": [fqn[pid] for pid in saved["params"]]})
        named = {"state": {fqn[int(k)]: v for k, v in state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, named, options=_options(broadcast_from_rank0=True))


def plain_skeleton(model: nn.Module) -> nn.Module:
    """A copy of the (not yet sharded) model whose parameters and persistent buffers are on the meta device: the
    shape of the plain module for ``materialize`` (export after training) at no memory cost."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    persistent = set(model.state_dict(keep_vars=True).keys())
    for name, b in model.named_buffers():
        if name in persistent:
            memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def materialize(skeleton: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    """Fill ``plain_skeleton``'s copy with a full state dict (tied parameters stay tied); returns it on the CPU."""
    owners: dict[int, list[tuple[nn.Module, str]]] = defaultdict(list)
    for module in skeleton.modules():
        for name, p in module._parameters.items():
            if p is not None:
                owners[id(p)].append((module, name))
    skeleton.load_state_dict(dict(state), strict=True, assign=True)
    for places in owners.values():
        first, name = places[0]
        for module, other in places[1:]:
            module._parameters[other] = first._parameters[name]
    return skeleton.to("cpu")


def ranks_with_batch(has_batch: bool, device: torch.device) -> int:
    """How many ranks still have an evaluation batch (lock-step evaluation of a sharded model). Collective."""
    flag = torch.tensor([int(has_batch)], device=device)
    dist.all_reduce(flag)
    return int(flag.item())


def check_model_state(skeleton: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``load_model_state``'s checks (missing/unexpected keys, shapes, with its fix) against the plain skeleton."""
    import warnings

    from trainforge.checkpoint.io import load_model_state

    with warnings.catch_warnings():  # loading into meta parameters is a no-op, which is all a check needs
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
        load_model_state(skeleton, state, source)
