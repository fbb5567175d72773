"""Benchmark 3: training throughput with the on-disk encoder cache vs without (adapter training, as in the ASR
and SMT stages). The first epoch fills the cache; the ratio compares the epochs after it, interleaved.

    python benchmarks/training_encoder_cache.py [--whisper WHISPER_FOLDER] [--llm_layers 4]
    # the demo recipe's model and data (recipes/demo.yaml: Qwen2.5-0.5B, 16 queries, 2-layer Q-Former):
    python benchmarks/training_encoder_cache.py --whisper .cache/llmsrt-models/whisper-base \
        --llm .cache/llmsrt-models/qwen2.5-0.5b-instruct --manifest .cache/demo-corpus/train.jsonl \
        --num_query_tokens 16 --qformer_layers 2 [--variable_length]
"""

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch
from peak_memory import PeakMemory
from transformers import WhisperFeatureExtractor

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import CurriculumCollator, load_manifest
from llmsrt.testing import build_tiny_tokenizer

TEXTS = ["the train leaves at nine", "good morning my friend", "where is the station", "see you tomorrow"]


def build_synthetic(whisper: str | None, llm_layers: int, variable_length: bool):
    """Whisper-base-sized encoder (real weights with `whisper`) and a Qwen2.5-0.5B-wide LLM of `llm_layers`."""
    tokenizer = build_tiny_tokenizer(TEXTS * 10, vocab_size=400)
    processor = LLMSRTProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
    base = {"num_mel_bins": 80, "d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8,
            "encoder_ffn_dim": 2048, "max_source_positions": 1500, "decoder_layers": 1}
    config = LLMSRTConfig(audio_config=base, text_config={
        "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": llm_layers, "num_attention_heads": 14, "num_key_value_heads": 2},
        audio_token_id=processor.audio_token_id, variable_length_encoding=variable_length)
    model = LLMSRTForConditionalGeneration(config)
    if whisper:
        from transformers import WhisperModel

        model.audio_encoder.load_state_dict(WhisperModel.from_pretrained(whisper).get_encoder().state_dict())
    return model, processor


def synthetic_batches(processor, clips: int, batch_size: int) -> list:
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(int(rng.uniform(3, 8) * 16000))).astype(np.float32) for _ in range(clips)]
    return [processor(audio=audio[i : i + batch_size], sampling_rate=16000, src_lang="eng", tgt_lang="deu",
                      targets=[f"{TEXTS[j % 4]}<|eng|><|deu|>{TEXTS[(j + 1) % 4]}" for j in range(batch_size)])
            for i in range(0, clips, batch_size)]


def manifest_batches(processor, manifest: str, clips: int, batch_size: int) -> list:
    """ASR-stage batches of the first `clips` rows of a manifest, as the curriculum's collator builds them."""
    examples = load_manifest(manifest).select(range(clips))
    collate = CurriculumCollator(processor, task="asr")
    return [collate([examples[j] for j in range(i, min(i + batch_size, clips))]) for i in range(0, clips, batch_size)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default=None, help="Real Whisper weights for the encoder (speed is the same).")
    parser.add_argument("--llm", default=None, help="A real causal LM folder (with --whisper): the demo's model.")
    parser.add_argument("--manifest", default=None, help="Train on these clips (the demo corpus) instead of noise.")
    parser.add_argument("--llm_layers", type=int, default=4, help="Layers of the synthetic LLM (without --llm).")
    parser.add_argument("--num_query_tokens", type=int, default=80)
    parser.add_argument("--qformer_layers", type=int, default=8)
    parser.add_argument("--variable_length", action="store_true", help="Encode each clip at its own length.")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output", default=None, help="Write the row as JSON here.")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.llm:
        processor = LLMSRTProcessor.from_pretrained_parts(args.whisper, args.llm,
                                                          num_query_tokens=args.num_query_tokens)
        model = LLMSRTForConditionalGeneration.from_pretrained_parts(
            args.whisper, args.llm, audio_token_id=processor.audio_token_id, num_query_tokens=args.num_query_tokens,
            qformer_config={"num_hidden_layers": args.qformer_layers}, variable_length_encoding=args.variable_length)
        described = f"{args.llm}"
    else:
        model, processor = build_synthetic(args.whisper, args.llm_layers, args.variable_length)
        described = f"{args.llm_layers}-layer 896-wide LLM"
    model.requires_grad_(False)
    model.speech_adapter.requires_grad_(True)
    model.train()
    if args.manifest:
        batches = manifest_batches(processor, args.manifest, args.clips, args.batch_size)
    else:
        batches = synthetic_batches(processor, args.clips, args.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def epoch() -> float:
        start = time.perf_counter()
        for batch in batches:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return len(batches) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as cache_dir:
        cache = model.disk_encoder_cache(cache_dir)
        with model.using_encoder_cache(cache):
            epoch()  # fills the cache
        plain, cached, peaks = [], [], {"without": 0.0, "with": 0.0}
        for _ in range(args.epochs):
            with PeakMemory() as peak:
                plain.append(epoch())
            peaks["without"] = max(peaks["without"], peak.gib)
            with model.using_encoder_cache(cache), PeakMemory() as peak:
                cached.append(epoch())
            peaks["with"] = max(peaks["with"], peak.gib)
    plain_rate, cached_rate = statistics.median(plain), statistics.median(cached)
    encoding = "variable-length" if args.variable_length else "30-s window"
    print(f"steps/s without cache {plain_rate:.3f}, with cache {cached_rate:.3f}: {cached_rate / plain_rate:.2f}x "
          f"(batch {args.batch_size}, {encoding} encoding, {described}, {args.num_query_tokens} queries, adapter "
          f"training); peak memory added per epoch: {peaks['without']:.2f} GiB without, {peaks['with']:.2f} GiB with")
    if args.output:
        row = {**vars(args), "steps_per_s_without": plain_rate, "steps_per_s_with": cached_rate,
               "speedup": cached_rate / plain_rate, "peak_gib": peaks}
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(row, handle, indent=2)


if __name__ == "__main__":
    main()
