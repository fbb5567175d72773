"""Convert a CTranslate2 (faster-whisper) Whisper checkpoint into a transformers Whisper folder.

    python -m llmsrt.conversion.convert_ctranslate2_whisper_to_hf --checkpoint_dir faster-whisper-base \
        --output_dir whisper-base-hf

The input folder holds `model.bin` (CTranslate2 format), and optionally `config.json` (suppress ids, alignment
heads) and `tokenizer.json`. The output loads with `WhisperForConditionalGeneration.from_pretrained` and carries a
feature extractor, and, given a tokenizer, the tokenizer and a complete generation config (language and task
tokens), without which transformers' Whisper drops the first words of a transcript.
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from .ctranslate2_format import read_model_bin, write_model_bin

SPEC = "WhisperSpec"
# CTranslate2 name (below "<stack>/layer_<i>/") -> transformers name (below "model.<stack>.layers.<i>.")
_LAYER = {
    "self_attention/linear_1": "self_attn.out_proj",
    "self_attention/layer_norm": "self_attn_layer_norm",
    "attention/linear_0": "encoder_attn.q_proj",
    "attention/linear_2": "encoder_attn.out_proj",
    "attention/layer_norm": "encoder_attn_layer_norm",
    "ffn/linear_0": "fc1",
    "ffn/linear_1": "fc2",
    "ffn/layer_norm": "final_layer_norm",
}
_STACK = {
    "conv1": "conv1", "conv2": "conv2", "layer_norm": "layer_norm",
    "position_encodings/encodings": "embed_positions.weight", "embeddings": "embed_tokens",
}
_PARAMETERS = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
# Fused projections: CTranslate2 stores q,k,v (self-attention) and k,v (cross-attention) as one matrix.
_FUSED = {"self_attention/linear_0": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
          "attention/linear_1": ("encoder_attn.k_proj", "encoder_attn.v_proj")}


def _hf_name(name: str) -> str | None:
    """The transformers name of an unfused CTranslate2 variable, or None for scalars/metadata."""
    match = re.fullmatch(r"(encoder|decoder)/layer_(\d+)/(.+)/(weight|bias|gamma|beta)", name)
    if match:
        stack, index, module, parameter = match.groups()
        if module in _LAYER:
            return f"model.{stack}.layers.{index}.{_LAYER[module]}.{_PARAMETERS[parameter]}"
        return None
    if name == "decoder/projection/weight":
        return "proj_out.weight"
    match = re.fullmatch(r"(encoder|decoder)/(.+?)(?:/(weight|bias|gamma|beta))?", name)
    if match and match.group(2) in _STACK:
        stack, module, parameter = match.groups()
        target = _STACK[module]
        return f"model.{stack}.{target}" + (f".{_PARAMETERS[parameter]}" if parameter else "")
    return None


def ctranslate2_to_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables to a transformers `WhisperForConditionalGeneration` state dict."""
    state = {}
    for name, array in variables.items():
        tensor = torch.from_numpy(np.array(array, dtype=np.float32))
        match = re.fullmatch(r"(encoder|decoder)/layer_(\d+)/(.+)/(weight|bias)", name)
        if match and match.group(3) in _FUSED:
            stack, index, module, parameter = match.groups()
            targets = _FUSED[module]
            for target, part in zip(targets, tensor.chunk(len(targets), dim=0)):
                if target.endswith("k_proj") and parameter == "bias":
                    continue  # Whisper's key projections have no bias (CTranslate2 stores zeros)
                state[f"model.{stack}.layers.{index}.{target}.{parameter}"] = part.clone()
            continue
        hf_name = _hf_name(name)
        if hf_name is not None:
            state[hf_name] = tensor
    if "proj_out.weight" not in state:
        state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return state


def state_dict_to_ctranslate2(state: dict[str, torch.Tensor], config: WhisperConfig,
                              dtype=np.float16) -> dict[str, np.ndarray]:
    """The inverse mapping (transformers -> CTranslate2 variables), e.g. to test the converter on a tiny model."""
    reverse = {}
    for name in [f"{stack}/{module}/{p}" for stack in ("encoder", "decoder") for module in ("conv1", "conv2")
                 for p in ("weight", "bias")] + ["encoder/position_encodings/encodings",
                                                  "decoder/position_encodings/encodings", "decoder/embeddings/weight",
                                                  "encoder/layer_norm/gamma", "encoder/layer_norm/beta",
                                                  "decoder/layer_norm/gamma", "decoder/layer_norm/beta"]:
        hf_name = _hf_name(name)
        if hf_name in state:
            reverse[name] = state[hf_name]
    for stack, layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for index in range(layers):
            for module, target in _LAYER.items():
                for parameter in (("gamma", "beta") if "layer_norm" in module else ("weight", "bias")):
                    hf_name = f"model.{stack}.layers.{index}.{target}.{_PARAMETERS[parameter]}"
                    if hf_name in state:
                        reverse[f"{stack}/layer_{index}/{module}/{parameter}"] = state[hf_name]
            for module, targets in _FUSED.items():
                prefix = f"model.{stack}.layers.{index}."
                if prefix + targets[0] + ".weight" not in state:
                    continue
                reverse[f"{stack}/layer_{index}/{module}/weight"] = torch.cat(
                    [state[prefix + t + ".weight"] for t in targets])
                reverse[f"{stack}/layer_{index}/{module}/bias"] = torch.cat(
                    [state.get(prefix + t + ".bias", torch.zeros(state[prefix + t + ".weight"].shape[0]))
                     for t in targets])
    variables = {name: tensor.detach().float().numpy().astype(dtype) for name, tensor in reverse.items()}
    variables["encoder/num_heads"] = np.array(config.encoder_attention_heads, dtype=np.int8)
    variables["decoder/num_heads"] = np.array(config.decoder_attention_heads, dtype=np.int8)
    return variables


def config_from_variables(variables: dict[str, np.ndarray], vocab: dict[str, int] | None = None) -> WhisperConfig:
    """Read the model's dimensions off its weights (CTranslate2 keeps no architecture config); special token ids
    come from the tokenizer's `vocab` when given."""
    special = {}
    if vocab:
        end, start = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
        special = {"pad_token_id": end, "bos_token_id": end, "eos_token_id": end, "decoder_start_token_id": start}
    conv1 = variables["encoder/conv1/weight"]
    layers = {stack: len({m.group(1) for n in variables if (m := re.match(rf"{stack}/layer_(\d+)/", n))})
              for stack in ("encoder", "decoder")}
    return WhisperConfig(
        vocab_size=variables["decoder/embeddings/weight"].shape[0],
        num_mel_bins=conv1.shape[1],
        d_model=conv1.shape[0],
        encoder_layers=layers["encoder"],
        decoder_layers=layers["decoder"],
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        tie_word_embeddings=True,
        **special,
    )


def generation_config_for(tokenizer, config: WhisperConfig, ct2_config: dict) -> GenerationConfig:
    """Whisper's generation config: the language/task/timestamp tokens transformers needs to build the prompt."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = tokenizer.get_vocab()
    lang_to_id = {f"<|{code}|>": vocab[f"<|{code}|>"] for code in LANGUAGES if f"<|{code}|>" in vocab}
    return GenerationConfig(
        decoder_start_token_id=vocab["<|startoftranscript|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
        bos_token_id=vocab["<|endoftext|>"],
        lang_to_id=lang_to_id,
        task_to_id={task: vocab[f"<|{task}|>"] for task in ("transcribe", "translate") if f"<|{task}|>" in vocab},
        no_timestamps_token_id=vocab.get("<|notimestamps|>"),
        is_multilingual=len(lang_to_id) > 1,
        suppress_tokens=ct2_config.get("suppress_ids", []),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", [vocab["<|endoftext|>"]]),
        alignment_heads=ct2_config.get("alignment_heads"),
        max_length=config.max_target_positions,
        forced_decoder_ids=None,
    )


def convert_ctranslate2_whisper(checkpoint_dir: str | Path, output_dir: str | Path) -> WhisperForConditionalGeneration:
    checkpoint_dir, output_dir = Path(checkpoint_dir), Path(output_dir)
    spec, variables = read_model_bin(checkpoint_dir / "model.bin")
    if spec != SPEC:
        raise ValueError(f"{checkpoint_dir}/model.bin holds a {spec}, not a {SPEC}.")
    tokenizer = None
    tokenizer_file = checkpoint_dir / "tokenizer.json"
    if tokenizer_file.is_file():
        from transformers import WhisperTokenizerFast

        tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_file))
    config = config_from_variables(variables, tokenizer.get_vocab() if tokenizer is not None else None)
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(ctranslate2_to_state_dict(variables), strict=False)
    missing = [name for name in missing if name != "proj_out.weight"]
    if missing or unexpected:
        raise ValueError(f"Conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    ct2_config_file = checkpoint_dir / "config.json"
    ct2_config = json.loads(ct2_config_file.read_text()) if ct2_config_file.is_file() else {}
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(output_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
        model.generation_config = generation_config_for(tokenizer, config, ct2_config)
    model.save_pretrained(output_dir)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_dir", required=True, help="Folder with the CTranslate2 model.bin.")
    parser.add_argument("--output_dir", required=True, help="Where to write the transformers Whisper folder.")
    args = parser.parse_args(argv)
    convert_ctranslate2_whisper(args.checkpoint_dir, args.output_dir)
    print(f"Saved a transformers Whisper model to {args.output_dir}")


if __name__ == "__main__":
    main()


__all__ = ["convert_ctranslate2_whisper", "ctranslate2_to_state_dict", "state_dict_to_ctranslate2",
           "write_model_bin"]
