"""A faster CPU path for inference: dynamic int8 quantisation of the LLM's linear layers, or bf16 where the CPU
computes it natively. Opt-in, in place, for inference only (the quantised model neither trains nor saves)."""

import os
import platform
import warnings
from pathlib import Path

import torch
from torch import nn

CPU_MODES = ("int8", "bf16")
# Linear layers int8 leaves in float by default: the MLP output projections, whose inputs carry Qwen2's outlier
# activations (per-tensor int8 activations lose them). Measured on the trained demo-long model, 56 test clips
# (benchmarks/int8_quality.py): every layer int8: BLEU 4.5 vs 6.3 in fp32, WER/CER 117% vs 95%, 2.3x faster;
# down_proj kept in float: BLEU 6.8, WER/CER 96%, 1.75x faster.
INT8_FLOAT_LAYERS = ("down_proj",)
MODEL_PARTS = ("language_model", "audio_encoder", "speech_adapter")


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 matrix products natively here (AVX512-BF16 or AMX). Without them (e.g. AMD Zen 3,
    AVX2 only) bf16 is emulated and slower than fp32."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def describe_cpu() -> str:
    """The processor as `/proc/cpuinfo` names it, its cores, and the vector units that decide CPU speed here (an
    "AMD EPYC" may be a Zen 3 with AVX2 only or a Zen 4 with AVX-512): e.g. "AMD EPYC, 2 cores, AVX-512, native
    bf16"."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2 only" if "avx2" in flags else "no AVX2"
    bf16 = "native bf16" if cpu_has_fast_bf16() else "no native bf16"
    name = fields.get("model name", platform.processor() or "unknown CPU")
    return f"{name}, {os.cpu_count()} cores, {vector}, {bf16}"


def quantize_for_cpu(model: nn.Module, mode: str = "int8", parts: tuple[str, ...] = ("language_model",),
                     keep_float: tuple[str, ...] = INT8_FLOAT_LAYERS) -> nn.Module:
    """Make `model` (an `LLMSRTForConditionalGeneration`, e.g. `pipeline(...).model`) faster on the CPU, in place.

    Args:
        model: the model, on the CPU.
        mode: `"int8"`: the `nn.Linear` layers of `parts` (but `keep_float`) become dynamically quantised int8
            linear layers (weights int8 per tensor, activations quantised per batch at run time;
            `torch.ao.quantization.quantize_dynamic`, the fbgemm/x86 kernels), the output layer included.
            `"bf16"`: `parts` are cast to bfloat16 (worth it only where `cpu_has_fast_bf16()`; the speech adapter
            stays in float32 as in every dtype).
        parts: which of `MODEL_PARTS` to convert (default: the LLM only, where most of the compute is).
        keep_float: int8 only: linear layers whose name ends with one of these stay in float (default
            `INT8_FLOAT_LAYERS`, the MLP output projections; `()` quantises every linear layer).

    Returns:
        `model`, converted.
    """
    if mode not in CPU_MODES:
        raise ValueError(f"mode must be one of {CPU_MODES}, got {mode!r}.")
    unknown = [part for part in parts if part not in MODEL_PARTS]
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty selection of {MODEL_PARTS}, got {parts!r}.")
    if any(parameter.device.type != "cpu" for parameter in model.parameters()):
        raise ValueError("quantize_for_cpu converts a model on the CPU; move it there first (model.to('cpu')).")
    model.eval()
    for part in parts:
        module = getattr(model, part)
        if mode == "bf16":
            if part != "speech_adapter":
                module.to(torch.bfloat16)
            continue
        chosen = {name for name, layer in module.named_modules()
                  if isinstance(layer, nn.Linear) and not name.endswith(tuple(keep_float))}
        with warnings.catch_warnings():  # torch.ao's eager-mode quantisation is deprecated in favour of torchao
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(module, chosen, dtype=torch.qint8, inplace=True)
    return model


__all__ = ["CPU_MODES", "INT8_FLOAT_LAYERS", "MODEL_PARTS", "cpu_has_fast_bf16", "quantize_for_cpu"]
