"""Sharded training: what a run asked for, what it got, FSDP2 on CPU processes, and the trained model unsharded.

Sharding is asked for in one of two ways, both read here:
    accelerate launch --config_file configs/accelerate/fsdp.yaml ...   (the launcher sets ACCELERATE_USE_FSDP, FSDP_*)
    torchrun ... train.py ... --fsdp "full_shard auto_wrap" --fsdp_config F.json          (the Trainer's own options)
and DeepSpeed by `configs/accelerate/deepspeed-zero*.yaml` or `--deepspeed`.

accelerate (1.16) turns FSDP on only for accelerator devices: its `AcceleratorState` switches a MULTI_GPU (or XPU,
NPU, ...) state to FSDP, never a MULTI_CPU one, so on CPU processes with gloo both ways silently train as DDP.
torch's FSDP2 (`fully_shard`) runs on CPU processes with gloo, and `enable_fsdp_on_cpu` lets accelerate use it
there: CI tests sharded training on two CPU processes with the same code path that shards on GPUs.
"""

import copy
import logging
import os

import torch
from torch import nn

logger = logging.getLogger(__name__)


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def requested_sharding(args) -> str | None:
    """"fsdp" or "deepspeed" when the run asked for sharding (TrainingArguments or the accelerate launcher's
    environment), else None."""
    if args.fsdp or args.fsdp_plugin_args or _flag("ACCELERATE_USE_FSDP"):
        return "fsdp"
    if args.deepspeed or _flag("ACCELERATE_USE_DEEPSPEED"):
        return "deepspeed"
    return None


def fsdp_plugin(args):
    """The FSDP plugin the Trainer would build: from `--fsdp_config`, else from the launcher's FSDP_* variables."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(**(args.fsdp_plugin_args or {}))


def enable_fsdp_on_cpu(args, mixed_precision: str | None = None, dynamo_plugin=None) -> bool:
    """On CPU processes (accelerate's MULTI_CPU state: gloo) that asked for FSDP, set up accelerate's state as FSDP
    before the Trainer creates its `Accelerator` (with the `mixed_precision` and `dynamo_plugin` the Trainer gives
    it), which then shards the model with FSDP2 as it does on GPUs. Returns whether it did."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    if requested_sharding(args) != "fsdp" or PartialState().distributed_type != DistributedType.MULTI_CPU:
        return False
    if dynamo_plugin is None:
        from accelerate.utils import TorchDynamoPlugin

        dynamo_plugin = TorchDynamoPlugin()
    state = AcceleratorState(mixed_precision=mixed_precision, cpu=True, dynamo_plugin=dynamo_plugin,
                             _from_accelerator=True)
    if state.distributed_type == DistributedType.FSDP:  # done by an earlier stage of this process
        return True
    plugin = fsdp_plugin(args)
    if plugin.fsdp_version != 2:
        raise ValueError(f"FSDP on CPU processes needs fsdp_version: 2 (FSDP2), got {plugin.fsdp_version}.")
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    logger.info("FSDP2 on %d CPU processes (gloo).", state.num_processes)
    return True


def keep_present_layer_classes(plugin, model: nn.Module) -> None:
    """Let one FSDP config serve Qwen2.5 and Gemma-3 text sides: of the layer classes it names to wrap
    (`fsdp_transformer_layer_cls_to_wrap`), keep those `model` has (accelerate refuses a class a model lacks)."""
    names = plugin.transformer_cls_names_to_wrap
    if not names:
        return
    names = names.split(",") if isinstance(names, str) else list(names)
    present = {type(module).__name__ for module in model.modules()}
    kept = [name for name in names if name in present]
    if not kept:
        raise ValueError(f"The FSDP config wraps {names}, none of which is in the model; its decoder layers are "
                         f"{sorted(name for name in present if name.endswith('DecoderLayer'))}.")
    plugin.transformer_cls_names_to_wrap = kept


def shards_weights(trainer) -> bool:
    """Whether the trainer's model will hold shards of its weights: FSDP, or DeepSpeed ZeRO stage 3."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return trainer.is_fsdp_enabled or (plugin is not None and plugin.zero_stage == 3)


def sharding_in_effect(model: nn.Module, accelerator) -> str | None:
    """What the wrapped model actually is: "fsdp" (FSDP2 or FSDP1 modules inside), "deepspeed" (a DeepSpeed
    engine), or None (a plain or DDP-wrapped model: every process holds every weight)."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP1

    if any(isinstance(module, (FSDPModule, FSDP1)) for module in model.modules()):
        return "fsdp"
    if type(model).__name__ == "DeepSpeedEngine" or getattr(accelerator, "deepspeed_engine_wrapped", None):
        return "deepspeed"
    return None


def check_sharding(args, model: nn.Module, accelerator) -> None:
    """RuntimeError when the run asked for sharding and the model it trains was not sharded (a silent fallback to
    DDP would hold the whole model on every process: the memory a sharded recipe was planned without)."""
    requested = requested_sharding(args)
    if requested is None:
        return
    got = sharding_in_effect(model, accelerator)
    if got != requested:
        wrapped = type(model).__name__
        raise RuntimeError(
            f"This run asked for {requested} sharding, but accelerate prepared the model as {wrapped} "
            f"(distributed type {accelerator.distributed_type}, {accelerator.num_processes} process(es)): no weight "
            f"is sharded. Launch with `accelerate launch --config_file configs/accelerate/fsdp.yaml ...` or "
            f"`torchrun ... --fsdp 'full_shard auto_wrap' --fsdp_config F` on {accelerator.num_processes} or more "
            f"processes (docs/training.md)."
        )
    logger.info("Sharding in effect: %s over %d process(es).", got, accelerator.num_processes)


def meta_twin(model: nn.Module) -> nn.Module:
    """A copy of `model`'s modules whose parameters are on the meta device (no memory): the unsharded structure
    `unshard` fills after FSDP2 changed `model` in place. Buffers are copied (small; non-persistent ones, such as
    rotary frequencies, are in no state dict)."""
    memo = {
        id(parameter): nn.Parameter(torch.empty_like(parameter, device="meta"), parameter.requires_grad)
        for parameter in model.parameters()
    }
    return copy.deepcopy(model, memo)


def full_weight(parameter: nn.Parameter) -> torch.Tensor:
    """A copy of the whole of a sharded parameter: an FSDP2 DTensor, or a DeepSpeed ZeRO-3 partition (not tested
    here: DeepSpeed does not run on the CI's CPUs), or a parameter every process holds."""
    from torch.distributed.tensor import DTensor

    if isinstance(parameter, DTensor):
        return parameter.detach().full_tensor()
    if hasattr(parameter, "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([parameter]):
            return parameter.detach().clone()
    return parameter.detach().clone()


def unshard(sharded: nn.Module, twin: nn.Module) -> nn.Module:
    """`twin` (from `meta_twin` of the model before sharding) holding the full weights of the sharded, trained
    model (FSDP2 and ZeRO-3 keep the parameter names). Every process must call it: each sharded weight is gathered
    from all of them. Weights tied in the model stay tied."""
    trained = dict(sharded.named_parameters())
    filled: dict[int, nn.Parameter] = {}
    for name, placeholder in twin.named_parameters():  # shared parameters once, in the model's order
        weight = full_weight(trained[name])
        if weight.shape != placeholder.shape:
            raise RuntimeError(f"Gathering {name} gave {tuple(weight.shape)}, not {tuple(placeholder.shape)}.")
        filled[id(placeholder)] = nn.Parameter(weight, requires_grad=placeholder.requires_grad)
    for module in twin.modules():
        for leaf, placeholder in list(module.named_parameters(recurse=False)):
            setattr(module, leaf, filled[id(placeholder)])
    sharded_buffers = dict(sharded.named_buffers())
    for name, buffer in twin.named_buffers():
        buffer.copy_(sharded_buffers[name])  # not sharded by FSDP2: the training process's own values
    return twin
