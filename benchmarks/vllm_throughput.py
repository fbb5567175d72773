"""Throughput side by side: (a) llmsrt in transformers (batched `generate`), (b) llmsrt in vLLM, (c) Qwen2-Audio in
vLLM, at equal encoder and LLM sizes, random weights, on 5-s and 30-s clips, at concurrency 1, 8, 32.

Concurrency c: waves of c requests handed over at once (transformers: one padded batch of c clips; vLLM: c prompts
to `LLM.generate`, which batches them continuously with up to c sequences). A request's latency is its wave's time
(all requests of a wave are handed over together and the wave ends with the last answer): p50/p90 are over waves.
Every request generates exactly `--new_tokens` tokens (EOS ignored). Where the time goes: the encoder and the
adapter are timed on their own (the same modules in torch: vLLM runs llmsrt's code for them), prefill as a wave
with one new token (minus encoder and adapter), decode as the rest.

    python benchmarks/vllm_throughput.py --preset small --output benchmarks/results/vllm_throughput_cpu.json

Needs vLLM (`make test-vllm` builds its venv). Written for a CPU run (float32, eager); on a GPU pass --dtype
bfloat16 --preset paper.
"""

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import (
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.inference.quantization import describe_cpu
from llmsrt.serving.prompts import request_prompt
from llmsrt.testing import build_tiny_tokenizer

PRESETS = {
    # whisper-tiny encoder sizes, a 4-layer Qwen2 with Qwen's vocabulary, a 2-layer Q-Former: minutes on 2 cores.
    "small": {"audio": dict(d_model=384, layers=4, heads=6, ffn=1536, mels=80), "qformer_layers": 2,
              "text": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                           intermediate_size=1536, vocab_size=151936)},
    # whisper-base + Qwen2.5-0.5B sizes, the paper's 8-layer Q-Former.
    "base": {"audio": dict(d_model=512, layers=6, heads=8, ffn=2048, mels=80), "qformer_layers": 8,
             "text": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                          intermediate_size=4864, vocab_size=151936)},
    # the paper: whisper-large-v3 + Qwen2.5-3B (a GPU).
    "paper": {"audio": dict(d_model=1280, layers=32, heads=20, ffn=5120, mels=128), "qformer_layers": 8,
              "text": dict(hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                           intermediate_size=11008, vocab_size=151936)},
}
CORPUS = ["the train leaves at nine", "der zug fährt um neun ab"]
QWEN2AUDIO_PROMPT = "<|audio_bos|><|AUDIO|><|audio_eos|>" + "<|eng|><|deu|>"


def whisper_config(audio: dict) -> dict:
    return {"num_mel_bins": audio["mels"], "d_model": audio["d_model"], "encoder_layers": audio["layers"],
            "encoder_attention_heads": audio["heads"], "encoder_ffn_dim": audio["ffn"],
            "max_source_positions": 1500}


def llmsrt_with_processor(preset: dict, device="cpu") -> tuple[LLMSRTForConditionalGeneration, LLMSRTProcessor]:
    """An LLM-SRT of the preset's sizes with random weights (float32), built on `device`, and its processor."""
    tokenizer = build_tiny_tokenizer(CORPUS)
    processor = LLMSRTProcessor(WhisperFeatureExtractor(feature_size=preset["audio"]["mels"]), tokenizer)
    text = {"model_type": "qwen2", **preset["text"], "max_position_embeddings": 4096, "tie_word_embeddings": True}
    config = LLMSRTConfig(audio_config={**whisper_config(preset["audio"]), "decoder_layers": 1},
                          qformer_config={"num_hidden_layers": preset["qformer_layers"]}, text_config=text,
                          audio_token_id=processor.audio_token_id, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):
        return LLMSRTForConditionalGeneration(config).eval(), processor


def save_llmsrt(folder: Path, preset: dict, device="cpu", dtype=torch.float32):
    model, processor = llmsrt_with_processor(preset, device)
    model.to(dtype).save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor


def save_qwen2audio(folder: Path, preset: dict, device="cpu", dtype=torch.float32) -> None:
    tokenizer = build_tiny_tokenizer(CORPUS)
    tokenizer.add_tokens(["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"], special_tokens=True)
    processor = Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=preset["audio"]["mels"]), tokenizer,
                                    chat_template="{{ messages[0]['content'] }}")
    text = {"model_type": "qwen2", **preset["text"], "max_position_embeddings": 4096}
    config = Qwen2AudioConfig(audio_config=whisper_config(preset["audio"]), text_config=text,
                              audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    torch.manual_seed(0)
    with torch.device(device):
        Qwen2AudioForConditionalGeneration(config).eval().to(dtype).save_pretrained(folder)
    processor.save_pretrained(folder)
    # transformers 5.19 writes the LLM under `language_model.model.model.`; vLLM reads the published layout.
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file({name.replace("language_model.model.model.", "language_model.model."): tensor
               for name, tensor in weights.items()}, folder / "model.safetensors", metadata={"format": "pt"})


def clips(seconds: float, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32) for _ in range(count)]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def row(engine, seconds, concurrency, wave_times, new_tokens, parts):
    """One table row. `parts`: where the time of a median wave goes, from separate timings (one wave each); a part
    computed as a residual can come out below zero when it is smaller than their noise, and is then None."""
    total = sum(wave_times)
    return {"engine": engine, "clip_seconds": seconds, "concurrency": concurrency,
            "clips_per_second": concurrency * len(wave_times) / total,
            "latency_p50_s": statistics.median(wave_times),
            "latency_p90_s": float(np.percentile(wave_times, 90)), "waves": len(wave_times),
            "new_tokens": new_tokens, "parts_s": parts}


@torch.no_grad()
def bench_transformers(model, processor, seconds, concurrency, waves, new_tokens, warm_up=True) -> dict:
    inputs = processor(audio=clips(seconds, concurrency), src_lang="eng", tgt_lang="deu", task="srt")
    settings = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": 0, "max_new_tokens": new_tokens,
                "min_new_tokens": new_tokens, "suppress_tokens": None}
    model.generation_config.eos_token_id = None

    def generate():
        model.generate(**inputs, **settings)

    if warm_up:
        generate()
    wave_times = [timed(generate) for _ in range(waves)]
    frames = {}
    encoder = timed(lambda: frames.update(out=model.encode_frames(inputs["input_features"],
                                                                    inputs["input_features_mask"])))
    adapter = timed(lambda: model.speech_adapter(*frames["out"]))
    embeds = model.embed_inputs(inputs["input_ids"], inputs["input_features"], inputs["input_features_mask"])
    prefill = timed(lambda: model.language_model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"],
                                                 logits_to_keep=1))
    decode = statistics.median(wave_times) - encoder - adapter - prefill
    parts = {"encoder": encoder, "adapter": adapter, "prefill": prefill, "decode": decode if decode >= 0 else None}
    return row("llmsrt-transformers", seconds, concurrency, wave_times, new_tokens, parts)


def vllm_engine(folder, concurrency_max, max_model_len, dtype, kv_cache_bytes: int = 1 << 30):
    from vllm import LLM

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return LLM(model=str(folder), dtype=dtype, enforce_eager=True, max_model_len=max_model_len,
               max_num_seqs=concurrency_max, kv_cache_memory_bytes=kv_cache_bytes, limit_mm_per_prompt={"audio": 1},
               max_num_batched_tokens=max(8192, max_model_len),
               # every request is new audio: no reuse of an earlier request's features or KV blocks
               enable_prefix_caching=False, mm_processor_cache_gb=0)


def close_engine(llm):
    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    cleanup_dist_env_and_memory()


def bench_vllm(llm, engine, prompt, seconds, concurrency, waves, new_tokens, audio_parts=None, warm_up=True) -> dict:
    from vllm import SamplingParams

    def requests():  # new arrays each wave: vLLM's processor cache would skip the features of a repeated clip
        return [{"prompt": prompt, "multi_modal_data": {"audio": (clip, 16000)}}
                for clip in clips(seconds - 0.01 * np.random.rand(), concurrency)]  # at most the encoder window

    full = SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True,
                          detokenize=False)
    first = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True, detokenize=False)
    if warm_up:
        llm.generate(requests(), full, use_tqdm=False)
    wave_times = []
    for _ in range(waves):
        batch = requests()
        wave_times.append(timed(lambda batch=batch: llm.generate(batch, full, use_tqdm=False)))
    batch = requests()
    first_token = timed(lambda: llm.generate(batch, first, use_tqdm=False))
    decode = statistics.median(wave_times) - first_token
    parts = {"encoder+adapter+prefill": first_token, "decode": decode if decode >= 0 else None}
    if audio_parts is not None:
        prefill = first_token - sum(audio_parts.values())
        parts = {**audio_parts, "prefill": prefill if prefill >= 0 else None, "decode": parts["decode"]}
    return row(engine, seconds, concurrency, wave_times, new_tokens, parts)


@torch.no_grad()
def audio_parts(model, processor, seconds, concurrency) -> dict:
    inputs = processor(audio=clips(seconds, concurrency), src_lang="eng", tgt_lang="deu", task="srt")
    frames = {}
    encoder = timed(lambda: frames.update(out=model.encode_frames(inputs["input_features"],
                                                                    inputs["input_features_mask"])))
    return {"encoder": encoder, "adapter": timed(lambda: model.speech_adapter(*frames["out"]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--waves", type=int, nargs="+", default=[2, 1, 1], help="Waves per concurrency level.")
    parser.add_argument("--new_tokens", type=int, default=16)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--engines", nargs="+", default=["llmsrt-transformers", "llmsrt-vllm", "qwen2audio-vllm"])
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    waves = dict(zip(args.concurrency, args.waves + [1] * len(args.concurrency)))
    work = Path(tempfile.mkdtemp(prefix="vllm-throughput-"))
    model, processor = save_llmsrt(work / "llmsrt", preset)
    rows = []

    def report(result):
        rows.append(result)
        parts = " ".join(f"{name} {'<noise' if value is None else f'{value:.2f}s'}"
                         for name, value in result["parts_s"].items())
        print(f"{result['engine']:<20} {result['clip_seconds']:>4.0f}s c={result['concurrency']:<3} "
              f"{result['clips_per_second']:7.2f} clips/s  p50 {result['latency_p50_s']:6.2f}s  "
              f"p90 {result['latency_p90_s']:6.2f}s  | {parts}", flush=True)

    if "llmsrt-transformers" in args.engines:
        for seconds in args.seconds:
            for concurrency in args.concurrency:
                report(bench_transformers(model, processor, seconds, concurrency, waves[concurrency],
                                          args.new_tokens, warm_up=concurrency == args.concurrency[0]))
    prompt_tokens = len(processor.tokenizer(request_prompt(processor, "srt", "eng", "deu"))["input_ids"]) - 1
    if "llmsrt-vllm" in args.engines:
        llm = vllm_engine(work / "llmsrt", max(args.concurrency), 256, args.dtype)
        for seconds in args.seconds:
            for concurrency in args.concurrency:
                # measured again here: the engine sets this process's threads (as it runs llmsrt's encoder)
                parts = audio_parts(model, processor, seconds, concurrency)
                prompt = request_prompt(processor, "srt", "eng", "deu")
                report(bench_vllm(llm, "llmsrt-vllm", prompt, seconds, concurrency, waves[concurrency],
                                  args.new_tokens, parts, warm_up=concurrency == args.concurrency[0]))
        close_engine(llm)
    if "qwen2audio-vllm" in args.engines:
        save_qwen2audio(work / "qwen2audio", preset)
        llm = vllm_engine(work / "qwen2audio", max(args.concurrency), 1024, args.dtype)
        prompt = QWEN2AUDIO_PROMPT
        for seconds in args.seconds:
            for concurrency in args.concurrency:
                report(bench_vllm(llm, "qwen2audio-vllm", prompt, seconds, concurrency, waves[concurrency],
                                  args.new_tokens, warm_up=concurrency == args.concurrency[0]))
        close_engine(llm)
    summary = {"cpu": describe_cpu(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "preset": args.preset, "sizes": preset, "dtype": args.dtype, "llmsrt_prompt_tokens":
               processor.num_query_tokens + prompt_tokens, "rows": rows}
    print(f"CPU: {summary['cpu']} ({summary['cores']} cores)")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
