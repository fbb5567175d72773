"""Convert a checkpoint of the LLM-SRT authors (the SLAM-LLM fork behind arXiv 2409.19510, v1.0, and MCAT,
arXiv 2512.01512, v2.0) into an llmsrt folder.

    python -m llmsrt.conversion.convert_llm_srt_checkpoint --checkpoint llm_srt_3b.pt \
        --whisper openai/whisper-large-v3 --llm Qwen/Qwen2.5-3B --output_dir llm-srt-3b \
        [--lora_alpha 32] [--no_lora] [--language_tag zho=cmn] [--projector q-former|qqm]
    python -m llmsrt.conversion.convert_llm_srt_checkpoint --checkpoint mcat_large_27b.pt \
        --whisper openai/whisper-large-v3 --llm google/gemma-3-27b-it --output_dir mcat-large

Two layouts are read (see docs/conversion.md):

- **One file** (`torch.save` of the parameters that trained, bf16, as `save_model_checkpoint_peft` writes it):
  `encoder_projector.query` `(1, Q, 768)` and `encoder_projector.qformer.*` (transformers' `Blip2QFormerModel`);
  `encoder_projector.linear` + `norm` (LLM width <= 1536) or `linear1`, ReLU, `linear2`, `norm`; with LoRA
  `llm.base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}.default.weight`; with a trained encoder
  `encoder.*` (transformers' `WhisperEncoder` names).
- **The FSDP save path** (`save_model_checkpoint_peft_full_shard`): a folder with `model.pt` (the projector, and
  `encoder.*` when the encoder trained) and the LLM's peft adapter (`adapter_config.json` +
  `adapter_model.safetensors` or `adapter_model.bin`). `--checkpoint` names the folder or its `model.pt`.

The LoRA rank is read from the tensors; alpha is `--lora_alpha` (default: the adapter_config.json's where there is
one, else the reference's 32, which the file cannot confirm). Older transformers saved an unused text branch in
every Q-Former layer (`qformer.encoder.layer.N.intermediate.*` / `.output.*`): those keys are dropped with a
warning. The projector is told by its query count: 80 is the reference's `q-former`; 150 is MCAT's `qqm`, whose
Q-Former outputs are mean-pooled by 5 (`encoder_projector_ds_rate`) into 30 embeddings before its MLP (Linear(768,
2560), ReLU, Linear(2560, d), LayerNorm). Another count is refused unless `--projector` names the kind.

The LLM is whatever `AutoModelForCausalLM` loads from `--llm`; of a multimodal folder (MCAT's `gemma-3-27b-it`,
`Gemma3ForConditionalGeneration`) its text model. LoRA keys are read in each layout the reference wrote: the text
decoder at `model.layers.N` (a causal LM: Qwen2, Gemma-2), `model.language_model.layers.N` (Gemma-3 under current
transformers) or `language_model.model.layers.N` (Gemma-3 under older transformers); LoRA on the vision tower (peft
matched `q_proj`/`v_proj` there too) is counted and left out. The prompt is laid out as the reference's
`tokenizer.encode(prompt)` after the audio: with the BOS that the LLM's tokenizer adds (Gemma), or none (Qwen). On
a Gemma-2 LLM, the audio embeddings are scaled by `sqrt(hidden_size)` as transformers 4.x Gemma-2 scaled every input
embedding. The converter prints what it found and writes it into the model card.

The output folder holds the model (LoRA merged), the processor (with `--language_tag` tags), the remote code, a
generation config with the paper's decoding and a model card naming the source checkpoint and its licence. The
folder's Q-Former reads the whole 30-s window, padding included (`qformer_attends_padding=True`), as the reference.
"""

import argparse
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, Blip2QFormerConfig

from ..configuration_llmsrt import paper_adapter_hidden_size
from ..hub.card import render_model_card
from ..languages import MCAT_CODES, MCAT_LANGUAGES
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from ..processing_llmsrt import LLMSRTProcessor
from ..prompt_builder import PromptBuilder, check_language_tags, tokenizer_prompt_layout

logger = logging.getLogger(__name__)

# The released checkpoint (`yxdu/llm-srt`: whisper-large-v3 + Qwen2.5-3B) and its licence, for the model card.
SOURCE_LICENSE = "cc-by-nc-sa-4.0"
# The reference's LoRA alpha (`PeftConfig.lora_alpha` in examples/st_covost2/asr_config.py, with r 8 then 16).
REFERENCE_LORA_ALPHA = 32

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
# The projectors llmsrt builds, by the reference's `encoder_projector` names, their query counts and the stride of
# the mean-pooling of the Q-Former's outputs (`qqm`: `encoder_projector_ds_rate`, 5 in the MCAT scripts).
PROJECTORS = ("q-former", "qqm")
REFERENCE_QUERY_COUNTS = {"q-former": 80, "qqm": 150}
POOLING_STRIDES = {"q-former": 1, "qqm": 5}
# Where the reference's LoRA keys put the LLM's text decoder (below `llm.base_model.model.`), by the LLM class and
# transformers version it was trained with, and llmsrt's name for it (the text causal LM's `model.layers`).
TEXT_LORA_LAYOUTS = {
    "model.layers.": "a causal LM's model.layers.N (Qwen2, Gemma-2, ...)",
    "model.language_model.layers.": "Gemma-3 model.language_model.layers.N (current transformers)",
    "language_model.model.layers.": "Gemma-3 language_model.model.layers.N (older transformers)",
}
TEXT_LAYERS = "model.layers."
# LoRA that peft put on a multimodal LLM's vision tower (its q_proj / v_proj match the targets by suffix).
VISION_LORA_MODULE = re.compile(r"(^|\.)(vision_tower|vision_model)\.")
# The Q-Former's text branch (`Blip2QFormerLayer.intermediate` / `.output`, built by transformers before
# `use_qformer_text_input` existed): never run on query-only input, so dropped.
TEXT_BRANCH_KEY = re.compile(r"^qformer\.encoder\.layer\.\d+\.(intermediate|output)\.")
LORA_KEY = re.compile(r"^llm\.base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.default\.weight$")
# A peft adapter file's keys: `base_model.model.<module>.lora_A.weight` as peft writes them, `llm.`-prefixed as the
# reference's FSDP path hands peft its own state dict; the adapter name may stay in.
PEFT_ADAPTER_KEY = re.compile(
    r"^(?:llm\.)?base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])(?:\.default)?\.weight$"
)
_LAYER_MODULE = re.compile(r"^(?P<stack>.+\.layers)\.(?P<layer>\d+)\.(?P<kind>.+)$")
_QFORMER_LAYER = re.compile(r"^qformer\.encoder\.layer\.(\d+)\.(crossattention\.)?")
PEFT_CONFIG_NAME = "adapter_config.json"
PEFT_WEIGHT_NAMES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class ReferenceCheckpoint:
    """What a reference checkpoint holds, sorted into llmsrt's parts.

    Attributes:
        files: the files read.
        adapter: the speech adapter's tensors, under llmsrt's names (below `speech_adapter.`).
        encoder: trained Whisper encoder tensors (below `audio_encoder.`), if any.
        lora: `{LLM module name: {"A": (r, in), "B": (out, r)}}`, under the text causal LM's names.
        lora_layout: which of `TEXT_LORA_LAYOUTS` the file's LoRA keys use (`None` without LoRA).
        vision_lora: the vision-tower LoRA modules that were left out.
        text_branch_keys: the Q-Former text-branch keys that were dropped.
        peft_config: the adapter_config.json of the FSDP layout, if any.
    """

    files: list[str]
    adapter: dict[str, torch.Tensor]
    encoder: dict[str, torch.Tensor] = field(default_factory=dict)
    lora: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    lora_layout: str | None = None
    vision_lora: list[str] = field(default_factory=list)
    text_branch_keys: list[str] = field(default_factory=list)
    peft_config: dict | None = None


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


def load_peft_adapter(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The LLM's LoRA from a peft adapter folder, under the single-file layout's key names, and its config."""
    config = json.loads((folder / PEFT_CONFIG_NAME).read_text(encoding="utf-8"))
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise ValueError(f"{folder / PEFT_CONFIG_NAME} is a {config.get('peft_type')!r} adapter; only LoRA is read.")
    weights = next((folder / name for name in PEFT_WEIGHT_NAMES if (folder / name).is_file()), None)
    if weights is None:
        raise ValueError(f"{folder} has {PEFT_CONFIG_NAME} but none of {list(PEFT_WEIGHT_NAMES)}.")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(weights)
    else:
        tensors = load_reference_checkpoint(weights)
    state, unknown = {}, []
    for key, tensor in tensors.items():
        match = PEFT_ADAPTER_KEY.match(key)
        if match:
            state[f"llm.base_model.model.{match['module']}.lora_{match['part']}.default.weight"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"{weights} holds {len(unknown)} key(s) that are not LoRA matrices: {sorted(unknown)[:5]}. Accepted: "
            "[llm.]base_model.model.<module>.lora_{A,B}[.default].weight."
        )
    return state, config


def read_reference_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str], dict | None]:
    """The reference's tensors from a `.pt` file or an FSDP save folder (`model.pt` + peft adapter), with the files
    read and the adapter's config. A `.pt` file with a peft adapter beside it is read with that adapter."""
    path = Path(path)
    pt_file = path / "model.pt" if path.is_dir() else path
    if not pt_file.is_file():
        raise ValueError(
            f"{path}: expected the reference's .pt file, or an FSDP save folder holding model.pt and a peft adapter "
            f"({PEFT_CONFIG_NAME} + {' or '.join(PEFT_WEIGHT_NAMES)})."
        )
    state = load_reference_checkpoint(pt_file)
    files, peft_config = [str(pt_file)], None
    if (pt_file.parent / PEFT_CONFIG_NAME).is_file():
        lora, peft_config = load_peft_adapter(pt_file.parent)
        if any(LORA_KEY.match(key) for key in state):
            raise ValueError(f"{pt_file} holds LoRA keys and so does the peft adapter beside it: which one is meant?")
        state.update(lora)
        files.append(str(pt_file.parent / PEFT_CONFIG_NAME))
    return state, files, peft_config


def split_checkpoint(state: dict[str, torch.Tensor]) -> ReferenceCheckpoint:
    """Sort the reference's keys into adapter, encoder and LoRA (see `ReferenceCheckpoint`); the Q-Former's unused
    text branch is dropped, with a warning that counts its keys.

    Raises:
        ValueError: listing every key that belongs to none of them.
    """
    contents = ReferenceCheckpoint(files=[], adapter={})
    unknown = []
    for key, tensor in state.items():
        lora_match = LORA_KEY.match(key)
        if key.startswith(PROJECTOR_PREFIX):
            name = key[len(PROJECTOR_PREFIX) :]
            if name in PROJECTOR_RENAMES:
                contents.adapter[PROJECTOR_RENAMES[name]] = tensor
            elif TEXT_BRANCH_KEY.match(name):
                contents.text_branch_keys.append(key)
            elif name.startswith(QFORMER_PREFIX):
                contents.adapter[name] = tensor
            else:
                unknown.append(key)
        elif key.startswith(ENCODER_PREFIX):
            contents.encoder[key[len(ENCODER_PREFIX) :]] = tensor
        elif lora_match:
            contents.lora.setdefault(lora_match["module"], {})[lora_match["part"]] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"{len(unknown)} checkpoint key(s) belong to no part of LLM-SRT: {sorted(unknown)}. Accepted: "
            f"{PROJECTOR_PREFIX}{{query, qformer.*, linear, linear1, linear2, norm}}, {ENCODER_PREFIX}* "
            "(transformers' WhisperEncoder names) and LoRA keys matching "
            "llm.base_model.model.<module>.lora_{A,B}.default.weight."
        )
    contents.lora, contents.lora_layout, contents.vision_lora = text_lora(contents.lora)
    if contents.text_branch_keys:
        logger.warning(
            "Dropped %d Q-Former text-branch tensors (qformer.encoder.layer.N.intermediate.* / output.*, saved by "
            "older transformers and never run on the queries alone).", len(contents.text_branch_keys)
        )
    return contents


def text_lora(lora: dict[str, dict]) -> tuple[dict[str, dict], str | None, list[str]]:
    """The LoRA modules of the LLM's text decoder under the text causal LM's names (`model.layers.N...`), the layout
    the file used (a key of `TEXT_LORA_LAYOUTS`), and the vision-tower modules left out.

    Raises:
        ValueError: LoRA outside the text decoder and the vision tower, or keys of two layouts in one file.
    """
    text, layouts, vision, other = {}, set(), [], []
    for name, pair in lora.items():
        if VISION_LORA_MODULE.search(name):
            vision.append(name)
            continue
        layout = next((prefix for prefix in TEXT_LORA_LAYOUTS if name.startswith(prefix)), None)
        if layout is None:
            other.append(name)
            continue
        layouts.add(layout)
        text[TEXT_LAYERS + name[len(layout) :]] = pair
    if other:
        raise ValueError(
            f"LoRA on modules outside the LLM's decoder layers and its vision tower: {sorted(other)[:5]}. Accepted "
            f"paths below llm.base_model.model.: {', '.join(TEXT_LORA_LAYOUTS)} (and *vision_tower.*, left out)."
        )
    if len(layouts) > 1:
        raise ValueError(f"The checkpoint's LoRA keys mix the text-decoder layouts {sorted(layouts)}: one file holds "
                         "one model's keys.")
    if vision and not text:
        raise ValueError(f"The checkpoint's LoRA sits on the vision tower only ({len(vision)} modules): no LoRA of the "
                         "text decoder to merge.")
    return text, (layouts.pop() if layouts else None), sorted(vision)


def text_side_kwargs(text_config) -> tuple[dict, str]:
    """`LLMSRTConfig` fields for how the reference fed the audio embeddings to this LLM, and a summary line.

    The reference writes the audio embeddings over the text embeddings (`embed_tokens(input_ids)`) and hands the
    LLM `inputs_embeds`. Gemma-3's embedding layer scales the text by `sqrt(hidden_size)` and its forward does not
    rescale: the audio is unscaled. transformers 4.x Gemma-2 scaled every `inputs_embeds` in its forward instead,
    the audio's included (the file does not record the transformers version; Gemma-3 needs 4.50 or later, and
    transformers 4.x is the line the reference's Gemma-3 code was written against).
    """
    if text_config.model_type == "gemma2":
        scale = text_config.hidden_size**0.5
        return {"audio_embedding_scale": scale}, (
            f"x {scale:g} = sqrt({text_config.hidden_size}) (Gemma-2: transformers 4.x scaled every inputs_embeds, the "
            "audio's included)"
        )
    if getattr(text_config, "model_type", "").startswith("gemma3"):
        return {}, "unscaled (merged after Gemma-3's scaled text embedding, as the reference)"
    return {}, "unscaled (merged over the text embeddings, as the reference)"


def check_projector(adapter: dict[str, torch.Tensor], projector: str | None) -> str:
    """The projector this adapter is, or a `ValueError` saying what the file holds. Its mark is the query count:
    the reference's `q-former` has 80 queries, its `qqm` (MCAT) 150, mean-pooled by 5 to 30 embeddings.
    `projector` (a user's `--projector`) overrides the count."""
    if projector is not None and projector not in PROJECTORS:
        raise ValueError(f"--projector {projector!r}: llmsrt builds {list(PROJECTORS)} only.")
    if "query_tokens" not in adapter:
        found = sorted(name for name in adapter if not name.startswith(QFORMER_PREFIX))
        raise ValueError(
            f"The checkpoint has no {PROJECTOR_PREFIX}query: it is not a Q-Former adapter (projector tensors found: "
            f"{found or 'none'}). The reference's `linear` and `cov1d-linear` projectors are not built by llmsrt."
        )
    queries, width = adapter["query_tokens"].shape[1:]
    if projector is not None:
        return projector
    found = next((kind for kind, count in REFERENCE_QUERY_COUNTS.items() if count == queries), None)
    if found is None:
        raise ValueError(
            f"The checkpoint's {PROJECTOR_PREFIX}query holds {queries} queries of width {width}: neither the "
            "reference's q-former (80) nor MCAT's qqm (150, mean-pooled by 5), so its layout is unknown. Name it: "
            "--projector q-former (a plain Q-Former with this many queries) or --projector qqm (pooled by 5)."
        )
    return found


def adapter_config_kwargs(adapter: dict[str, torch.Tensor], projector: str = "q-former") -> dict:
    """`LLMSRTConfig` fields read from the adapter's shapes: queries, Q-Former depth, width, FFN width and
    cross-attention frequency (other Q-Former settings are `Blip2QFormerConfig` defaults, as in the reference),
    the projector's hidden width (`0`: a single Linear), and the pooling stride of the `projector` kind."""
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
    stride = POOLING_STRIDES[projector]
    if num_queries < stride:
        raise ValueError(f"{num_queries} queries cannot be mean-pooled by {stride} ({projector}).")
    return {
        "num_query_tokens": int(num_queries),
        "query_pooling_stride": stride,
        "qformer_config": Blip2QFormerConfig(
            hidden_size=int(query_width),
            num_hidden_layers=num_layers,
            intermediate_size=int(intermediate),
            cross_attention_frequency=frequency,
        ).to_dict(),
        "adapter_hidden_size": int(hidden),
    }


def lora_rank(lora: dict[str, dict[str, torch.Tensor]]) -> int:
    """The LoRA rank the tensors were trained with: `lora_A` `(r, in)`, `lora_B` `(out, r)`, one `r` for all."""
    incomplete = sorted(name for name, pair in lora.items() if set(pair) != {"A", "B"})
    if incomplete:
        raise ValueError(f"LoRA modules without both lora_A and lora_B: {incomplete}.")
    ranks = {pair["A"].shape[0] for pair in lora.values()} | {pair["B"].shape[1] for pair in lora.values()}
    if len(ranks) != 1:
        raise ValueError(f"The checkpoint's LoRA matrices disagree on their rank: {sorted(ranks)}.")
    return ranks.pop()


def lora_layout(lora: dict) -> tuple[list[int], list[str]]:
    """The decoder layers and the projections (`self_attn.q_proj`, ...) that LoRA modules sit on."""
    layers, kinds, other = set(), set(), []
    for name in lora:
        match = _LAYER_MODULE.match(name)
        if match is None:
            other.append(name)
            continue
        layers.add(int(match["layer"]))
        kinds.add(match["kind"])
    if other:
        raise ValueError(f"LoRA on modules outside the LLM's decoder layers: {sorted(other)}.")
    return sorted(layers), sorted(kinds)


def merge_reference_lora(model: LLMSRTForConditionalGeneration, lora: dict, alpha: int, rslora: bool = False) -> int:
    """Fold `W += scaling * B @ A` into the LLM (`scaling = alpha / r`, or `alpha / sqrt(r)` with rsLoRA). The
    projections that carry LoRA must carry it on every decoder layer of the LLM, with both matrices.

    Returns:
        The rank read from the tensors.
    """
    rank = lora_rank(lora)
    language_model = model.language_model
    _, kinds = lora_layout(lora)
    expected = {f"model.layers.{i}.{kind}" for i in range(model.config.text_config.num_hidden_layers) for kind in kinds}
    missing, unknown = sorted(expected - set(lora)), sorted(set(lora) - expected)
    if missing or unknown:
        raise ValueError(
            f"The checkpoint's LoRA keys do not cover the LLM's {', '.join(kinds)} on every layer: missing "
            f"{missing or 'none'}, unknown {unknown or 'none'}."
        )
    scaling = alpha / rank**0.5 if rslora else alpha / rank
    with torch.no_grad():
        for name, pair in lora.items():
            module = language_model.get_submodule(name)
            if not isinstance(module, nn.Linear):
                raise ValueError(f"{name}: LoRA on a {type(module).__name__}; only Linear layers are merged.")
            down, up = pair["A"].float(), pair["B"].float()
            if (up.shape[0], down.shape[1]) != tuple(module.weight.shape):
                raise ValueError(
                    f"{name}: LoRA update {(up.shape[0], down.shape[1])} does not fit the given LLM's weight "
                    f"{tuple(module.weight.shape)} ({model.config.text_model_name})."
                )
            module.weight.add_((scaling * up @ down).to(module.weight.dtype))
    return rank


def _copy_checked(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], part: str, owner: str) -> None:
    """Copy `source` into the parameters `target` (same names), after checking that names and shapes agree."""
    missing = sorted(set(target) - set(source))
    unknown = sorted(set(source) - set(target))
    if missing or unknown:
        raise ValueError(
            f"The checkpoint's {part} does not match llmsrt's: missing {missing or 'none'}, "
            f"unknown {unknown or 'none'}."
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


def resolve_lora_alpha(lora_alpha: int | None, peft_config: dict | None) -> tuple[int, str]:
    """The alpha to merge with and where it came from: `--lora_alpha`, the adapter_config.json, or the reference's
    default (32); a `--lora_alpha` that disagrees with the adapter_config.json is an error."""
    recorded = None if peft_config is None else peft_config.get("lora_alpha")
    if lora_alpha is not None and recorded is not None and lora_alpha != recorded:
        raise ValueError(f"--lora_alpha {lora_alpha}, but the adapter's {PEFT_CONFIG_NAME} says {recorded}.")
    if recorded is not None:
        return recorded, PEFT_CONFIG_NAME
    if lora_alpha is not None:
        return lora_alpha, "--lora_alpha"
    return REFERENCE_LORA_ALPHA, "the reference's default; the file does not record it"


def _projector_shape(adapter: dict[str, torch.Tensor]) -> str:
    first = adapter["projector.layers.0.weight"]
    norm = adapter["projector.layer_norm.weight"].shape[0]
    if "projector.layers.2.weight" not in adapter:
        return f"Linear({first.shape[1]}, {first.shape[0]}) + LayerNorm({norm})"
    second = adapter["projector.layers.2.weight"]
    return (f"Linear({first.shape[1]}, {first.shape[0]}) ReLU Linear({second.shape[1]}, {second.shape[0]}) + "
            f"LayerNorm({norm})")


def describe(contents: ReferenceCheckpoint, config_kwargs: dict, projector: str, lora_line: str,
             language_tags: dict[str, str] | None, llm_line: str, prompt_layout: list[str], audio_line: str,
             languages: list[str] | None = None) -> str:
    """The converter's summary of what it found and did (printed, and written into the model card)."""
    qformer = config_kwargs["qformer_config"]
    queries, width = contents.adapter["query_tokens"].shape[1:]
    dtypes = sorted({str(tensor.dtype).removeprefix("torch.") for tensor in contents.adapter.values()})
    if contents.encoder:
        encoder_line = f"{len(contents.encoder)} tensors (encoder.*), replacing the given Whisper's"
    else:
        encoder_line = "none (the given Whisper's weights, frozen as in the reference)"
    dropped = "none"
    if contents.text_branch_keys:
        dropped = (f"{len(contents.text_branch_keys)} Q-Former text-branch tensors "
                   "(qformer.encoder.layer.N.intermediate.* / output.*: unused by the queries)")
    if contents.vision_lora:
        vision = (f"{len(contents.vision_lora)} vision-tower LoRA modules ({2 * len(contents.vision_lora)} tensors: "
                  "the vision tower never sees audio)")
        dropped = vision if dropped == "none" else f"{dropped}; {vision}"
    stride = config_kwargs["query_pooling_stride"]
    pooled = f", mean-pooled by {stride} -> {queries // stride} embeddings per clip" if stride > 1 else \
             f" -> {queries} embeddings per clip"
    layout = "".join({"audio": f"[{queries // stride} audio]", "bos": "[<bos>]", "instruction": "[tags]"}[piece]
                     for piece in prompt_layout)
    builder = PromptBuilder(language_tags=language_tags, languages=tuple(language_tags or ()))
    tags = ", ".join(f"{code} -> {builder.tag(code)}" for code in sorted(language_tags or {}))
    lines = [
        f"files: {', '.join(contents.files)}",
        (f"speech adapter: {len(contents.adapter)} tensors (encoder_projector.*, {'/'.join(dtypes)}), "
         f"projector {projector}"),
        f"queries: {queries} x {width}{pooled}",
        (f"Q-Former: {qformer['num_hidden_layers']} layers, cross-attention every "
         f"{qformer['cross_attention_frequency']} layers, FFN {qformer['intermediate_size']}"),
        f"projector: {_projector_shape(contents.adapter)}",
        f"LoRA: {lora_line}",
        f"LoRA keys: {TEXT_LORA_LAYOUTS[contents.lora_layout] if contents.lora_layout else 'none'}",
        f"LLM: {llm_line}",
        f"prompt: {layout} (as the reference's tokenizer.encode(prompt) after the audio)",
        f"audio embeddings: {audio_line}",
        f"encoder: {encoder_line}",
        f"dropped: {dropped}",
        "Q-Former view: the whole 30-s window, padding included (qformer_attends_padding=True, as the reference)",
        f"language tags: {tags or 'each language its ISO 639-3 code (<|zho|> for Mandarin)'}",
        f"languages: {len(languages)} (MCAT's; any other is refused)" if languages else
        "languages: not recorded (the paper's v1.0 set is assumed)",
    ]
    return "\n".join(lines)


class Conversion(NamedTuple):
    model: LLMSRTForConditionalGeneration
    summary: str


def convert_llm_srt_checkpoint(
    checkpoint: str | Path,
    whisper: str,
    llm: str,
    output_dir: str | Path,
    lora_alpha: int | None = None,
    no_lora: bool = False,
    projector: str | None = None,
    language_tags: dict[str, str] | None = None,
    dtype: torch.dtype | str | None = None,
) -> Conversion:
    """Build the reference's model from its parts and its checkpoint, and save it as an llmsrt folder.

    Args:
        checkpoint: the reference's `.pt` file (e.g. `llm_srt_3b.pt`), or an FSDP save folder (`model.pt` + peft
            adapter).
        whisper, llm: Hub ids or folders of the Whisper and the base LLM the checkpoint was trained on.
        output_dir: where to write the folder.
        lora_alpha: LoRA alpha of the run (default: the adapter_config.json's, else the reference's 32). The rank
            comes from the tensors.
        no_lora: convert the adapter alone, ignoring any LoRA in the file (as the authors' current inference script
            runs `llm_srt_3b.pt`: `use_peft=false`, `load_state_dict(strict=False)`).
        projector: `"q-former"` (a plain Q-Former) or `"qqm"` (outputs mean-pooled by 5) for a query count that is
            neither the reference's 80 (q-former) nor MCAT's 150 (qqm).
        language_tags: tag codes for languages whose training tag was not their ISO 639-3 code (`{"zho": "cmn"}`),
            saved with the processor.
        dtype: dtype of the Whisper and LLM weights (`None`: as the parts are saved); the adapter stays float32.

    Returns:
        The converted model, as saved, and the summary of what was found (also in the model card).
    """
    import llmsrt  # noqa: F401  (registers the classes for Auto, so that code files and auto_map are written)

    language_tags = check_language_tags(language_tags)
    state, files, peft_config = read_reference_checkpoint(checkpoint)
    contents = split_checkpoint(state)
    contents.files, contents.peft_config = files, peft_config
    projector = check_projector(contents.adapter, projector)
    config_kwargs = adapter_config_kwargs(contents.adapter, projector)
    if peft_config is not None and not contents.lora and not no_lora:
        raise ValueError(
            f"{checkpoint}: the peft adapter ({', '.join(files[1:])}) holds no LoRA tensors (a peft newer than the "
            "reference's, given its `llm.`-prefixed state dict, saves none). Convert the adapter alone with --no_lora."
        )
    lora_kwargs, lora_line = {}, "none in the file"
    if contents.lora:
        layers, kinds = lora_layout(contents.lora)
        rank = lora_rank(contents.lora)
        lora_line = f"{len(contents.lora)} modules ({', '.join(kinds)} on {len(layers)} layers), rank {rank} " \
                    "(from the tensors)"
        if no_lora:
            lora_line += ": not applied (--no_lora), the base LLM's weights"
        else:
            alpha, source = resolve_lora_alpha(lora_alpha, peft_config)
            rslora = bool(peft_config and peft_config.get("use_rslora"))
            scaling = alpha / rank**0.5 if rslora else alpha / rank
            lora_line += f", alpha {alpha} ({source}), scaling {scaling:g}{' (rsLoRA)' if rslora else ''}: merged " \
                         "into the LLM"
            lora_kwargs = {"lora_rank": rank, "lora_alpha": alpha,
                           "lora_target_modules": sorted({kind.rsplit(".", 1)[-1] for kind in kinds})}
    llm_config = AutoConfig.from_pretrained(llm)
    text_kwargs, audio_line = text_side_kwargs(llm_config.get_text_config())
    prompt_layout = list(tokenizer_prompt_layout(AutoTokenizer.from_pretrained(llm)))  # as tokenizer.encode(prompt)
    languages = None
    if projector == "qqm":  # MCAT (v2.0): trained on its 70 languages, tagged with its codes (<|cmn|>, <|azj|>, ...)
        languages = list(MCAT_LANGUAGES)
        language_tags = {**MCAT_CODES, **(language_tags or {})}
    processor = LLMSRTProcessor.from_pretrained_parts(
        whisper, llm, num_query_tokens=config_kwargs["num_query_tokens"] // config_kwargs["query_pooling_stride"],
        language_tags=language_tags, prompt_layout=prompt_layout,
    )
    processor.languages = languages
    model = LLMSRTForConditionalGeneration.from_pretrained_parts(
        whisper, llm, audio_token_id=processor.audio_token_id, dtype=dtype, qformer_attends_padding=True,
        **lora_kwargs, **config_kwargs, **text_kwargs,
    )
    llm_line = f"{type(model.language_model).__name__} ({model.config.text_config.model_type}, width " \
               f"{model.config.text_config.hidden_size}, {model.config.text_config.num_hidden_layers} layers)"
    if llm_config.get_text_config() is not llm_config:
        llm_line += f": the text model of {llm_config.architectures[0] if llm_config.architectures else 'its folder'}"
    width = model.config.text_config.hidden_size
    if projector == "q-former" and (paper_adapter_hidden_size(width) or 0) != config_kwargs["adapter_hidden_size"]:
        logger.warning("The checkpoint's projector hidden width is %s; the reference picks %s for an LLM %s wide.",
                       config_kwargs["adapter_hidden_size"], paper_adapter_hidden_size(width) or 0, width)
    load_adapter(model, contents.adapter)
    if contents.encoder:
        load_encoder(model, contents.encoder)
    if lora_kwargs:
        merge_reference_lora(model, contents.lora, lora_kwargs["lora_alpha"], rslora)
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    summary = describe(contents, config_kwargs, projector, lora_line, language_tags, llm_line, prompt_layout,
                       audio_line, languages)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    card = render_model_card(output_dir, license=SOURCE_LICENSE, source_checkpoint=Path(checkpoint).name,
                             conversion_summary=summary, lora_merged=bool(lora_kwargs))
    card.save(output_dir / "README.md")
    return Conversion(model, summary)


def parse_language_tag(text: str) -> tuple[str, str]:
    """`"zho=cmn"` -> `("zho", "cmn")`, for `--language_tag`."""
    language, separator, tag = text.partition("=")
    if not separator or not language or not tag:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LANGUAGE=TAG, e.g. zho=cmn.")
    return language.strip(), tag.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="The reference's .pt file (e.g. llm_srt_3b.pt), or an FSDP save folder (model.pt + "
                             "adapter_config.json + adapter_model.safetensors|bin).")
    parser.add_argument("--whisper", required=True, help="Hub id or folder of the Whisper it was trained on.")
    parser.add_argument("--llm", required=True, help="Hub id or folder of the base LLM it was trained on.")
    parser.add_argument("--output_dir", required=True, help="Where to write the llmsrt folder.")
    parser.add_argument("--lora_alpha", type=int, default=None,
                        help=f"LoRA alpha of the run (default: the adapter_config.json's, else the reference's "
                             f"{REFERENCE_LORA_ALPHA}). The rank is read from the tensors.")
    parser.add_argument("--no_lora", action="store_true",
                        help="Convert the adapter alone, leaving any LoRA in the file out (as the authors' current "
                             "inference script runs llm_srt_3b.pt).")
    parser.add_argument("--language_tag", type=parse_language_tag, action="append", default=[],
                        metavar="LANGUAGE=TAG",
                        help="The tag the model was trained with for a language, e.g. zho=cmn (writes <|cmn|> for "
                             "Mandarin); repeatable. Default: each language's ISO 639-3 code.")
    parser.add_argument("--projector", choices=PROJECTORS, default=None,
                        help="The projector kind where the query count does not tell it (80: q-former, 150: MCAT's "
                             "qqm, outputs mean-pooled by 5): q-former (plain Q-Former) or qqm (pooled by 5).")
    parser.add_argument("--dtype", default=None, help="dtype of the Whisper and LLM weights, e.g. bfloat16.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    conversion = convert_llm_srt_checkpoint(
        args.checkpoint, args.whisper, args.llm, args.output_dir, lora_alpha=args.lora_alpha, no_lora=args.no_lora,
        projector=args.projector, language_tags=dict(args.language_tag), dtype=args.dtype,
    )
    print(f"Converted {args.checkpoint}:")
    print("\n".join(f"  {line}" for line in conversion.summary.splitlines()))
    print(f"Saved an llmsrt model to {args.output_dir}")


if __name__ == "__main__":
    main()


__all__ = [
    "PROJECTOR_RENAMES",
    "Conversion",
    "ReferenceCheckpoint",
    "adapter_config_kwargs",
    "check_projector",
    "convert_llm_srt_checkpoint",
    "load_reference_checkpoint",
    "read_reference_checkpoint",
    "split_checkpoint",
]
