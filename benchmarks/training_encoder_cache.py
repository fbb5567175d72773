"""Benchmark 3: training throughput with the on-disk encoder cache vs without (adapter training, as in the ASR
and SMT stages). The first epoch fills the cache; the ratio compares the epochs after it, interleaved.

    python benchmarks/training_encoder_cache.py [--whisper WHISPER_FOLDER] [--llm_layers 4]
"""

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.tiny import build_tiny_tokenizer

TEXTS = ["the train leaves at nine", "good morning my friend", "where is the station", "see you tomorrow"]


def build(whisper: str | None, llm_layers: int):
    tokenizer = build_tiny_tokenizer(TEXTS * 10, vocab_size=400)
    processor = LLMSRTProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
    base = {"num_mel_bins": 80, "d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8,
            "encoder_ffn_dim": 2048, "max_source_positions": 1500, "decoder_layers": 1}
    config = LLMSRTConfig(audio_config=base, text_config={
        "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": llm_layers, "num_attention_heads": 14, "num_key_value_heads": 2},
        audio_token_id=processor.audio_token_id)
    model = LLMSRTForConditionalGeneration(config)
    if whisper:
        from transformers import WhisperModel

        model.audio_encoder.load_state_dict(WhisperModel.from_pretrained(whisper).get_encoder().state_dict())
    model.requires_grad_(False)
    model.speech_adapter.requires_grad_(True)
    return model.train(), processor


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", default=None, help="Real Whisper weights for the encoder (speed is the same).")
    parser.add_argument("--llm_layers", type=int, default=4)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, processor = build(args.whisper, args.llm_layers)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(rng.uniform(3, 8) * 16000))).astype(np.float32) for _ in range(args.clips)]
    batches = [processor(audio=clips[i : i + args.batch_size], sampling_rate=16000, src_lang="eng", tgt_lang="deu",
                         targets=[f"{TEXTS[j % 4]}<|eng|><|deu|>{TEXTS[(j + 1) % 4]}" for j in range(args.batch_size)])
               for i in range(0, args.clips, args.batch_size)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def epoch() -> float:
        start = time.perf_counter()
        for batch in batches:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return len(batches) / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as cache_dir:
        model.enable_encoder_cache(cache_dir)
        epoch()  # fills the cache
        plain, cached = [], []
        for _ in range(args.epochs):
            model.enable_encoder_cache(None)
            plain.append(epoch())
            model.enable_encoder_cache(cache_dir)
            cached.append(epoch())
    plain_rate, cached_rate = statistics.median(plain), statistics.median(cached)
    print(f"steps/s without cache {plain_rate:.2f}, with cache {cached_rate:.2f}: "
          f"{cached_rate / plain_rate:.2f}x (batch {args.batch_size}, whisper-base encoder, "
          f"{args.llm_layers}-layer 896-wide LLM, adapter training)")


if __name__ == "__main__":
    main()
