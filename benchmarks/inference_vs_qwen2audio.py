"""Benchmark 1 (and 5): LLM-SRT inference vs transformers' Qwen2-Audio at equal sizes, and vs the floor.

Both models get the same Whisper-sized encoder, the same LLM dimensions and the same clips, and generate exactly
the same number of tokens (greedy, min_new_tokens = max_new_tokens). Random weights: speed does not depend on
them. Ratios are measured side by side in one process, runs interleaved; absolute times are printed for context.

The floor is the encoder alone plus text-only generation of the same tokens from a prompt of LLM-SRT's length:
LLM-SRT's overhead over it is the adapter and the embedding merge. Qwen2-Audio's time over the floor's is the
ceiling of the speed-up for any model that runs the same encoder on the 30-s window and the same LLM on a prompt of
LLM-SRT's length, whatever its adapter.

    python benchmarks/inference_vs_qwen2audio.py --preset base          # whisper-base + Qwen2.5-0.5B sizes (CPU ok)
    python benchmarks/inference_vs_qwen2audio.py --preset paper         # whisper-large-v3 + Qwen2.5-3B (GPU)
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from peak_memory import PeakMemory
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration

PRESETS = {
    "tiny": {"audio": dict(d_model=64, layers=2, heads=4, ffn=128, mels=80),
             "text": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=256, vocab_size=4096)},
    "base": {"audio": dict(d_model=512, layers=6, heads=8, ffn=2048, mels=80),
             "text": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                          intermediate_size=4864, vocab_size=151936)},
    "paper": {"audio": dict(d_model=1280, layers=32, heads=20, ffn=5120, mels=128),
              "text": dict(hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                           intermediate_size=11008, vocab_size=151936)},
}
AUDIO_TOKEN = 151646 % 4096  # any id below every preset's vocabulary
PROMPT_TOKENS = 6  # e.g. "<|eng|><|deu|>"


def build_models(preset: dict, device, dtype):
    audio, text = preset["audio"], {**preset["text"], "max_position_embeddings": 4096}
    whisper = {"num_mel_bins": audio["mels"], "d_model": audio["d_model"], "encoder_layers": audio["layers"],
               "encoder_attention_heads": audio["heads"], "encoder_ffn_dim": audio["ffn"],
               "max_source_positions": 1500, "decoder_layers": 1}
    with torch.device(device):
        llmsrt = LLMSRTForConditionalGeneration(
            LLMSRTConfig(audio_config=whisper, text_config={"model_type": "qwen2", **text},
                         audio_token_id=AUDIO_TOKEN, eos_token_id=1, pad_token_id=0)
        ).to(dtype).eval()
        qwen_audio_encoder = {"num_mel_bins": audio["mels"], "d_model": audio["d_model"],
                              "encoder_layers": audio["layers"], "encoder_attention_heads": audio["heads"],
                              "encoder_ffn_dim": audio["ffn"], "max_source_positions": 1500}
        qwen2audio = Qwen2AudioForConditionalGeneration(
            Qwen2AudioConfig(audio_config=qwen_audio_encoder, text_config={"model_type": "qwen2", **text},
                             audio_token_index=AUDIO_TOKEN)
        ).to(dtype).eval()
    for model in (llmsrt, qwen2audio):
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    return llmsrt, qwen2audio


def inputs_for(seconds: float, batch: int, mels: int, num_queries: int, device, dtype):
    window, real = 3000, int(seconds * 100)
    features = torch.randn(batch, mels, window, device=device, dtype=dtype)
    mask = torch.zeros(batch, window, dtype=torch.long, device=device)
    mask[:, :real] = 1
    prompt = torch.full((batch, PROMPT_TOKENS), 7, device=device)
    ours = {"input_ids": torch.cat([torch.full((batch, num_queries), AUDIO_TOKEN, device=device), prompt], 1),
            "input_features": features, "input_features_mask": mask}
    ours["attention_mask"] = torch.ones_like(ours["input_ids"])
    audio_tokens = (((real - 1) // 2 + 1) - 2) // 2 + 1  # Qwen2-Audio: 25 tokens per second of audio
    theirs = {"input_ids": torch.cat([torch.full((batch, audio_tokens), AUDIO_TOKEN, device=device), prompt], 1),
              "input_features": features, "feature_attention_mask": mask}
    theirs["attention_mask"] = torch.ones_like(theirs["input_ids"])
    return ours, theirs, audio_tokens


def timed(function, device) -> tuple[float, float]:
    """Seconds and peak memory (GiB: the CUDA allocator's peak, or on the CPU the resident memory added)."""
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, peak.gib


@torch.no_grad()
def run(preset_name: str, seconds_list, batches, new_tokens: int, repeats: int, device, dtype) -> list[dict]:
    preset = PRESETS[preset_name]
    llmsrt, qwen2audio = build_models(preset, device, dtype)
    generate = {"do_sample": False, "num_beams": 1, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens,
                "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "suppress_tokens": None}
    rows = []
    for seconds in seconds_list:
        for batch in batches:
            ours, theirs, audio_tokens = inputs_for(seconds, batch, preset["audio"]["mels"],
                                                    llmsrt.config.num_query_tokens, device, dtype)
            prompt_ids = torch.full_like(ours["input_ids"], 7)

            def ours_fixed(ours=ours):
                llmsrt.config.variable_length_encoding = False
                llmsrt.generate(**ours, **generate)

            def ours_variable(ours=ours):
                llmsrt.config.variable_length_encoding = True
                llmsrt.generate(**ours, **generate)
                llmsrt.config.variable_length_encoding = False

            def baseline(theirs=theirs):
                qwen2audio.generate(**theirs, **generate)

            def floor(ours=ours, prompt_ids=prompt_ids):
                llmsrt.audio_encoder(ours["input_features"])
                llmsrt.language_model.generate(input_ids=prompt_ids, attention_mask=ours["attention_mask"],
                                               **generate)

            cases = {"qwen2audio": baseline, "llmsrt_30s": ours_fixed, "llmsrt_varlen": ours_variable,
                     "floor": floor}
            for function in cases.values():  # warm-up
                function()
            times = {name: [] for name in cases}
            peaks = {name: 0.0 for name in cases}
            for _ in range(repeats):
                for name, function in cases.items():
                    seconds_taken, peak = timed(function, device)
                    times[name].append(seconds_taken)
                    peaks[name] = max(peaks[name], peak)
            median = {name: statistics.median(values) for name, values in times.items()}
            rows.append({
                "preset": preset_name, "clip_seconds": seconds, "batch": batch, "new_tokens": new_tokens,
                "qwen2audio_audio_tokens": audio_tokens, "llmsrt_audio_tokens": llmsrt.config.num_query_tokens,
                "seconds": median, "peak_gib": peaks,
                "speedup_vs_qwen2audio_30s": median["qwen2audio"] / median["llmsrt_30s"],
                "speedup_vs_qwen2audio_varlen": median["qwen2audio"] / median["llmsrt_varlen"],
                "overhead_over_floor_30s": median["llmsrt_30s"] / median["floor"] - 1,
                # The most that any adapter between the same encoder (30-s window) and the same LLM (prompt of
                # LLM-SRT's length, same new tokens) could gain over Qwen2-Audio.
                "ceiling_vs_qwen2audio_30s": median["qwen2audio"] / median["floor"],
            })
            row = rows[-1]
            print(f"{preset_name} {seconds:>4}s x{batch}: qwen2audio {median['qwen2audio']:.3f}s | llmsrt "
                  f"{median['llmsrt_30s']:.3f}s ({row['speedup_vs_qwen2audio_30s']:.2f}x) | varlen "
                  f"{median['llmsrt_varlen']:.3f}s ({row['speedup_vs_qwen2audio_varlen']:.2f}x) | floor "
                  f"{median['floor']:.3f}s (llmsrt overhead {100 * row['overhead_over_floor_30s']:+.1f}%; ceiling "
                  f"{row['ceiling_vs_qwen2audio_30s']:.2f}x)",
                  flush=True)
    return rows


def speed_arguments(description: str, seconds: list[float], new_tokens: int):
    """The command line of the speed benchmarks over `PRESETS`: the arguments, the device and its dtype (bf16 on a
    GPU, fp32 on the CPU)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="base")
    parser.add_argument("--seconds", type=float, nargs="+", default=seconds)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new_tokens", type=int, default=new_tokens)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="Write the rows as JSON here.")
    args = parser.parse_args()
    device = torch.device(args.device)
    return args, device, torch.bfloat16 if device.type == "cuda" else torch.float32


def main():
    args, device, dtype = speed_arguments(__doc__, [5.0, 30.0], 50)
    torch.manual_seed(0)
    rows = run(args.preset, args.seconds, args.batches, args.new_tokens, args.repeats, device, dtype)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"device": str(device), "dtype": str(dtype), "rows": rows},
                                                indent=2))


if __name__ == "__main__":
    main()
