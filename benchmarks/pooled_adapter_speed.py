"""LLM-SRT v2.0-shaped (MCAT: 150 queries mean-pooled by 5 into 30 LLM embeddings per clip, MLP 2560) against
v1.0-shaped (80 queries, 80 embeddings): the same Whisper-sized encoder, the same LLM weights, the same clips.

Both are built from config only (`num_query_tokens`, `query_pooling_stride`, `adapter_hidden_size`), the
Q-Former reading the whole 30-s window as the reference's does; random weights (speed does not depend on them).
Three timings per model, interleaved in one process (median of `--repeats`):
- end to end: `generate` of exactly `--new_tokens` greedy tokens from log-mel features (encoder, adapter, LLM);
- LLM prefill alone: the LLM's forward over the merged prompt embeddings (audio + tags), as `generate`'s first
  step runs it (`logits_to_keep=1`, a KV cache written);
- encoder + adapter: `get_audio_features`.
Speed-up = v1.0-shaped time / v2.0-shaped time.

    python benchmarks/pooled_adapter_speed.py --preset base        # whisper-base + Qwen2.5-0.5B sizes (CPU ok)
    python benchmarks/pooled_adapter_speed.py --preset paper       # whisper-large-v3 + Qwen2.5-3B sizes (GPU)
"""

import json
import statistics
from pathlib import Path

import torch
from inference_vs_qwen2audio import AUDIO_TOKEN, PRESETS, PROMPT_TOKENS, speed_arguments, timed

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration
from llmsrt.inference.quantization import describe_cpu

# The adapters compared, as config fields: v1.0's (the paper's MLP rule from the LLM width) and MCAT's.
SHAPES = {
    "v1.0": {"num_query_tokens": 80},
    "v2.0": {"num_query_tokens": 150, "query_pooling_stride": 5, "adapter_hidden_size": 2560},
}


def build_models(preset: dict, device, dtype) -> dict[str, LLMSRTForConditionalGeneration]:
    """One model per shape; the v2.0-shaped one gets the v1.0-shaped one's encoder and LLM weights."""
    audio, text = preset["audio"], {**preset["text"], "max_position_embeddings": 4096}
    whisper = {"num_mel_bins": audio["mels"], "d_model": audio["d_model"], "encoder_layers": audio["layers"],
               "encoder_attention_heads": audio["heads"], "encoder_ffn_dim": audio["ffn"],
               "max_source_positions": 1500, "decoder_layers": 1}
    models = {}
    with torch.device(device):
        for name, shape in SHAPES.items():
            config = LLMSRTConfig(audio_config=whisper, text_config={"model_type": "qwen2", **text},
                                  audio_token_id=AUDIO_TOKEN, eos_token_id=1, pad_token_id=0,
                                  qformer_attends_padding=True, **shape)
            models[name] = LLMSRTForConditionalGeneration(config).to(dtype).eval()
    first, second = models.values()
    second.audio_encoder.load_state_dict(first.audio_encoder.state_dict())
    second.language_model.load_state_dict(first.language_model.state_dict())
    for model in models.values():
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    return models


def inputs_for(model: LLMSRTForConditionalGeneration, features, mask) -> dict:
    """The model's prompt for the clips: its `num_audio_embeddings` placeholders, then the tag tokens."""
    batch, device = features.shape[0], features.device
    placeholders = torch.full((batch, model.config.num_audio_embeddings), AUDIO_TOKEN, device=device)
    input_ids = torch.cat([placeholders, torch.full((batch, PROMPT_TOKENS), 7, device=device)], 1)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "input_features": features,
            "input_features_mask": mask}


@torch.no_grad()
def run(preset_name: str, seconds_list, batches, new_tokens: int, repeats: int, device, dtype,
        on_row=None) -> list[dict]:
    """The rows of every clip length and batch size; `on_row(rows)` after each (a long run keeps what it measured)."""
    preset = PRESETS[preset_name]
    models = build_models(preset, device, dtype)
    generate = {"do_sample": False, "num_beams": 1, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens,
                "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "suppress_tokens": None}
    rows = []
    for seconds in seconds_list:
        for batch in batches:
            features = torch.randn(batch, preset["audio"]["mels"], 3000, device=device, dtype=dtype)
            mask = torch.zeros(batch, 3000, dtype=torch.long, device=device)
            mask[:, : int(seconds * 100)] = 1
            cases = {}
            for name, model in models.items():
                inputs = inputs_for(model, features, mask)
                embeds = model.embed_inputs(inputs["input_ids"], features, mask)

                def end_to_end(model=model, inputs=inputs):
                    model.generate(**inputs, **generate)

                def prefill(model=model, embeds=embeds, inputs=inputs):
                    model.language_model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"],
                                         use_cache=True, logits_to_keep=1)

                def audio(model=model, features=features, mask=mask):
                    model.get_audio_features(features, mask)

                cases.update({(name, "end_to_end"): end_to_end, (name, "llm_prefill"): prefill,
                              (name, "encoder_adapter"): audio})
            for function in cases.values():  # warm-up
                function()
            times = {key: [] for key in cases}
            for _ in range(repeats):
                for key, function in cases.items():
                    times[key].append(timed(function, device)[0])
            median = {key: statistics.median(values) for key, values in times.items()}
            speedup = {part: median[("v1.0", part)] / median[("v2.0", part)]
                       for part in ("end_to_end", "llm_prefill", "encoder_adapter")}
            rows.append({
                "preset": preset_name, "clip_seconds": seconds, "batch": batch, "new_tokens": new_tokens,
                "audio_embeddings": {name: model.config.num_audio_embeddings for name, model in models.items()},
                "seconds": {f"{name} {part}": value for (name, part), value in median.items()},
                "speedup_v2_over_v1": speedup,
            })
            print(f"{preset_name} {seconds:>4}s x{batch}: end to end v1.0 {median[('v1.0', 'end_to_end')]:.3f}s, "
                  f"v2.0 {median[('v2.0', 'end_to_end')]:.3f}s ({speedup['end_to_end']:.2f}x) | LLM prefill "
                  f"{median[('v1.0', 'llm_prefill')]:.3f}s / {median[('v2.0', 'llm_prefill')]:.3f}s "
                  f"({speedup['llm_prefill']:.2f}x) | encoder+adapter {median[('v1.0', 'encoder_adapter')]:.3f}s / "
                  f"{median[('v2.0', 'encoder_adapter')]:.3f}s ({speedup['encoder_adapter']:.2f}x)", flush=True)
            if on_row is not None:
                on_row(rows)
    return rows


def main():
    args, device, dtype = speed_arguments(__doc__, [5.0], 20)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else describe_cpu()
    print(f"{machine}; {dtype}", flush=True)
    torch.manual_seed(0)

    def write(rows):
        if args.output:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(json.dumps({"machine": machine, "device": str(device), "dtype": str(dtype),
                                                     "rows": rows}, indent=2))

    run(args.preset, args.seconds, args.batches, args.new_tokens, args.repeats, device, dtype, write)


if __name__ == "__main__":
    main()
