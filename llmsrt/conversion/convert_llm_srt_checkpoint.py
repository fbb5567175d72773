"""Convert a checkpoint of the LLM-SRT authors (the SLAM-LLM fork behind arXiv 2409.19510) into an llmsrt folder.

    python -m llmsrt.conversion.convert_llm_srt_checkpoint --checkpoint llm_srt_3b.pt \
        --whisper openai/whisper-large-v3 --llm Qwen/Qwen2.5-3B --output_dir llm-srt-3b [--lora_rank 8 --lora_alpha 32]

The reference saves with `torch.save` a dict of only the parameters that trained (bf16) and loads it with
`load_state_dict(strict=False)` over a Whisper encoder and the base LLM. Its keys:

- `encoder_projector.query` `(1, Q, 768)` and `encoder_projector.qformer.*` (transformers' `Blip2QFormerModel`);
- `encoder_projector.linear` + `encoder_projector.norm` (LLM width <= 1536), else `encoder_projector.linear1`,
  ReLU, `encoder_projector.linear2`, `encoder_projector.norm`;
- with LoRA: `llm.base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}.default.weight` (merged here
  with `--lora_rank` / `--lora_alpha`);
- with a trained encoder: `encoder.*` (transformers' `WhisperEncoder` names).

The output folder holds the model (LoRA merged), the processor, the remote code, a generation config with the
paper's decoding and a model card naming the source checkpoint and its licence.
"""

import argparse
import logging
import re
from pathlib import Path

import torch
from transformers import Blip2QFormerConfig

from ..configuration_llmsrt import paper_adapter_hidden_size
from ..hub.card import render_model_card
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from ..processing_llmsrt import LLMSRTProcessor

logger = logging.getLogger(__name__)

# The released checkpoint (`yxdu/llm-srt`: whisper-large-v3 + Qwen2.5-3B) and its licence, for the model card.
SOURCE_LICENSE = "cc-by-nc-sa-4.0"

PROJECTOR_PREFIX = "encoder_projector."
ENCODER_PREFIX = "encoder."
# The reference's projector names (below `encoder_projector.`) -> llmsrt's (below `speech_adapter.`).
PROJECTOR_RENAMES = {
    "query": "query_tokens",
    "linear.weight": "projector.layers.0.weight",
    "linear.bias": "projector.layers.0.bias",
    "linear1.weight": "projector.layers.0.weight",
    "linear1.bias": "projector.layers.0.bias",
    "linear2.weight": "projector.layers.2.weight",
    "linear2.bias": "projector.layers.2.bias",
    "norm.weight": "projector.layer_norm.weight",
    "norm.bias": "projector.layer_norm.bias",
}
QFORMER_PREFIX = "qformer."  # the same `Blip2QFormerModel` names on both sides
LORA_KEY = re.compile(
    r"^llm\.base_model\.model\.(?P<module>model\.layers\.(?P<layer>\d+)\.self_attn\.[qv]_proj)"
    r"\.lora_(?P<part>[AB])\.default\.weight$"
)
_QFORMER_LAYER = re.compile(r"^qformer\.encoder\.layer\.(\d+)\.(crossattention\.)?")


def load_reference_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a reference `.pt` file without running any pickled code (`weights_only=True`): a flat dict of tensors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError...: not plain weights
        raise ValueError(
            f"{path} could not be read as plain weights (`torch.load(weights_only=True)`): {error}. Expected the "
            "reference's `torch.save` of a dict of tensors."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a dict of parameter name -> tensor.")
    return state


def split_checkpoint(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """Sort the reference's keys into `(adapter, encoder, lora)`: the adapter and the encoder under llmsrt's names
    (relative to `speech_adapter.` and `audio_encoder.`), LoRA as `{llm module name: {"A": ..., "B": ...}}`.

    Raises:
        ValueError: listing every key that belongs to none of them.
    """
    adapter, encoder, lora, unknown = {}, {}, {}, []
    for key, tensor in state.items():
        lora_match = LORA_KEY.match(key)
        if key.startswith(PROJECTOR_PREFIX):
            name = key[len(PROJECTOR_PREFIX) :]
            if name in PROJECTOR_RENAMES:
                adapter[PROJECTOR_RENAMES[name]] = tensor
            elif name.startswith(QFORMER_PREFIX):
                adapter[name] = tensor
            else:
                unknown.append(key)
        elif key.startswith(ENCODER_PREFIX):
            encoder[key[len(ENCODER_PREFIX) :]] = tensor
        elif lora_match:
            lora.setdefault(lora_match["module"], {})[lora_match["part"]] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"{len(unknown)} checkpoint key(s) belong to no part of LLM-SRT: {sorted(unknown)}. Accepted: "
            f"{PROJECTOR_PREFIX}{{query, qformer.*, linear, linear1, linear2, norm}}, {ENCODER_PREFIX}* "
            "(transformers' WhisperEncoder names) and LoRA keys matching "
            "llm.base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}.default.weight."
        )
    if "query_tokens" not in adapter:
        raise ValueError(f"The checkpoint has no {PROJECTOR_PREFIX}query: it is not an LLM-SRT speech adapter.")
    return adapter, encoder, lora


def adapter_config_kwargs(adapter: dict[str, torch.Tensor]) -> dict:
    """`LLMSRTConfig` fields read from the adapter's shapes: queries, Q-Former depth, width, FFN width and
    cross-attention frequency (other Q-Former settings are `Blip2QFormerConfig` defaults, as in the reference),
    and the projector's hidden width (`0`: a single Linear)."""
    num_queries, query_width = adapter["query_tokens"].shape[1:]
    layers, cross_layers = set(), set()
    for name in adapter:
        match = _QFORMER_LAYER.match(name)
        if match:
            layers.add(int(match[1]))
            if match[2]:
                cross_layers.add(int(match[1]))
    if not layers or not cross_layers:
        raise ValueError("The checkpoint's Q-Former has no layers with cross-attention (qformer.encoder.layer.N.*).")
    num_layers = max(layers) + 1
    ordered = sorted(cross_layers)
    frequency = ordered[1] - ordered[0] if len(ordered) > 1 else num_layers
    if ordered[0] != 0 or cross_layers != set(range(0, num_layers, frequency)):
        raise ValueError(
            f"Cross-attention on Q-Former layers {ordered} of {num_layers}: Blip2QFormerModel puts it on every "
            "`cross_attention_frequency`-th layer from layer 0."
        )
    intermediate = adapter["qformer.encoder.layer.0.intermediate_query.dense.weight"].shape[0]
    hidden = adapter["projector.layers.0.weight"].shape[0] if "projector.layers.2.weight" in adapter else 0
    return {
        "num_query_tokens": int(num_queries),
        "qformer_config": Blip2QFormerConfig(
            hidden_size=int(query_width),
            num_hidden_layers=num_layers,
            intermediate_size=int(intermediate),
            cross_attention_frequency=frequency,
        ).to_dict(),
        "adapter_hidden_size": int(hidden),
    }


def _copy_checked(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], part: str, owner: str) -> None:
    """Copy `source` into the parameters `target` (same names), after checking that names and shapes agree."""
    missing = sorted(set(target) - set(source))
    unknown = sorted(set(source) - set(target))
    if missing or unknown:
        raise ValueError(
            f"The checkpoint's {part} does not match llmsrt's: missing {missing or 'none'}, unknown {unknown or 'none'}."
        )
    wrong = [f"{name}: checkpoint {tuple(source[name].shape)}, {owner} needs {tuple(tensor.shape)}"
             for name, tensor in target.items() if source[name].shape != tensor.shape]
    if wrong:
        raise ValueError(f"Shapes of the checkpoint's {part} disagree with {owner}: " + "; ".join(wrong))
    with torch.no_grad():
        for name, tensor in target.items():
            tensor.copy_(source[name].to(tensor.dtype))


def load_adapter(model: LLMSRTForConditionalGeneration, adapter: dict[str, torch.Tensor]) -> None:
    """Copy the speech adapter; every parameter must come from the checkpoint."""
    owner = f"the given Whisper (width {model.config.audio_config.d_model}) and LLM (width " \
            f"{model.config.text_config.hidden_size})"
    _copy_checked(model.speech_adapter.state_dict(), adapter, "speech adapter (encoder_projector.*)", owner)


def load_encoder(model: LLMSRTForConditionalGeneration, encoder: dict[str, torch.Tensor]) -> None:
    """Copy the trained encoder weights over the given Whisper's. The reference saves trained parameters only, so
    Whisper's frozen positional embeddings (`embed_positions.weight`) may be absent; everything else must be there."""
    target = model.audio_encoder.state_dict()
    if "embed_positions.weight" not in encoder:
        target.pop("embed_positions.weight")
    owner = f"the given Whisper ({model.config.audio_model_name})"
    _copy_checked(target, encoder, "Whisper encoder (encoder.*)", owner)


def merge_reference_lora(model: LLMSRTForConditionalGeneration, lora: dict, rank: int, alpha: int) -> None:
    """Fold `W += alpha / rank * B @ A` into the LLM's q/v projections; every layer's q_proj and v_proj must have
    both matrices, of rank `rank`."""
    language_model = model.language_model
    expected = {f"model.layers.{i}.self_attn.{p}_proj" for i in range(model.config.text_config.num_hidden_layers)
                for p in "qv"}
    incomplete = sorted(name for name, pair in lora.items() if set(pair) != {"A", "B"})
    missing, unknown = sorted(expected - set(lora)), sorted(set(lora) - expected)
    if missing or unknown or incomplete:
        raise ValueError(
            f"The checkpoint's LoRA keys do not cover the LLM's q/v projections: missing {missing or 'none'}, "
            f"unknown {unknown or 'none'}, without both lora_A and lora_B {incomplete or 'none'}."
        )
    with torch.no_grad():
        for name, pair in lora.items():
            weight = language_model.get_submodule(name).weight
            down, up = pair["A"].float(), pair["B"].float()
            if down.shape[0] != rank or up.shape[1] != rank:
                raise ValueError(f"{name}: the checkpoint's LoRA rank is {down.shape[0]}, but --lora_rank is {rank}.")
            if (up.shape[0], down.shape[1]) != tuple(weight.shape):
                raise ValueError(
                    f"{name}: LoRA update {(up.shape[0], down.shape[1])} does not fit the given LLM's weight "
                    f"{tuple(weight.shape)} ({model.config.text_model_name})."
                )
            weight.add_((alpha / rank * up @ down).to(weight.dtype))


def convert_llm_srt_checkpoint(
    checkpoint: str | Path,
    whisper: str,
    llm: str,
    output_dir: str | Path,
    lora_rank: int = 8,
    lora_alpha: int = 32,
    dtype: torch.dtype | str | None = None,
) -> LLMSRTForConditionalGeneration:
    """Build the reference's model from its parts and its checkpoint, and save it as an llmsrt folder.

    Args:
        checkpoint: the reference's `.pt` file (e.g. `llm_srt_3b.pt`).
        whisper, llm: Hub ids or folders of the Whisper and the base LLM the checkpoint was trained on.
        output_dir: where to write the folder.
        lora_rank, lora_alpha: the LoRA settings of the run (paper: 8 and 32; later code: 16 and 32).
        dtype: dtype of the Whisper and LLM weights (`None`: as the parts are saved); the adapter stays float32.

    Returns:
        The converted model, as saved.
    """
    import llmsrt  # noqa: F401  (registers the classes for Auto, so that code files and auto_map are written)

    adapter, encoder, lora = split_checkpoint(load_reference_checkpoint(checkpoint))
    config_kwargs = adapter_config_kwargs(adapter)
    processor = LLMSRTProcessor.from_pretrained_parts(whisper, llm, num_query_tokens=config_kwargs["num_query_tokens"])
    model = LLMSRTForConditionalGeneration.from_pretrained_parts(
        whisper, llm, audio_token_id=processor.audio_token_id, dtype=dtype,
        lora_rank=lora_rank, lora_alpha=lora_alpha, **config_kwargs,
    )
    width = model.config.text_config.hidden_size
    if (paper_adapter_hidden_size(width) or 0) != config_kwargs["adapter_hidden_size"]:
        logger.warning("The checkpoint's projector hidden width is %s; the reference picks %s for an LLM %s wide.",
                       config_kwargs["adapter_hidden_size"], paper_adapter_hidden_size(width) or 0, width)
    load_adapter(model, adapter)
    if encoder:
        load_encoder(model, encoder)
    if lora:
        merge_reference_lora(model, lora, lora_rank, lora_alpha)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    card = render_model_card(output_dir, license=SOURCE_LICENSE, source_checkpoint=Path(checkpoint).name)
    card.save(output_dir / "README.md")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="The reference's .pt file (e.g. llm_srt_3b.pt).")
    parser.add_argument("--whisper", required=True, help="Hub id or folder of the Whisper it was trained on.")
    parser.add_argument("--llm", required=True, help="Hub id or folder of the base LLM it was trained on.")
    parser.add_argument("--output_dir", required=True, help="Where to write the llmsrt folder.")
    parser.add_argument("--lora_rank", type=int, default=8, help="LoRA rank of the run (paper: 8; later code: 16).")
    parser.add_argument("--lora_alpha", type=int, default=32, help="LoRA alpha of the run (paper: 32).")
    parser.add_argument("--dtype", default=None, help="dtype of the Whisper and LLM weights, e.g. bfloat16.")
    args = parser.parse_args(argv)
    convert_llm_srt_checkpoint(args.checkpoint, args.whisper, args.llm, args.output_dir, args.lora_rank,
                               args.lora_alpha, args.dtype)
    print(f"Saved an llmsrt model to {args.output_dir}")


if __name__ == "__main__":
    main()


__all__ = [
    "PROJECTOR_RENAMES",
    "adapter_config_kwargs",
    "convert_llm_srt_checkpoint",
    "load_reference_checkpoint",
    "split_checkpoint",
]
