"""The GPU check (run by benchmarks/gpu/check.sh): the paper recipe's shapes with random weights, nothing downloaded.

    check.py train [--fsdp] --shapes paper|dry-run --output PART.json    # one training measurement
    check.py infer --shapes paper|dry-run --output PART.json             # vLLM throughput, llmsrt vs Qwen2-Audio
    check.py combine PART.json ... --output CHECK.json                   # the one JSON

train: the SRT stage of recipes/paper-qwen2.5-3b-fleurs15.yaml (Whisper-large-v3 encoder frozen, 80-query Q-Former
adapter and LoRA training, Qwen2.5-3B in bf16 with bf16 autocast (float32 autocast-free on a CPU dry run), batch 8
of 30-s clips) through LLMSRTTrainer:
median step time and peak memory, in one process or under FSDP2 (configs/trainer-fsdp.json; check.sh runs it
with torchrun on one GPU). infer: clips per second of llmsrt and Qwen2-Audio on vLLM at 30-s clips, Qwen2-Audio at
llmsrt's LLM size (Qwen2.5-3B) and at its own (Qwen2-Audio-7B's Qwen-7B LLM). `dry-run` shapes are tiny and run on
a CPU in a few minutes (CI: tests/test_gpu_check.py).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1]
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))

from inference_vs_qwen2audio import PRESETS as TINY_PRESETS  # noqa: E402
from peak_memory import PeakMemory  # noqa: E402
from vllm_throughput import PRESETS  # noqa: E402

# Qwen2-Audio-7B's LLM (Qwen-7B): its own size, for the paper's speed claim.
QWEN2_AUDIO_7B_TEXT = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                           intermediate_size=11008, vocab_size=156032)
SHAPES = {
    "paper": {**PRESETS["paper"], "own_size_text": QWEN2_AUDIO_7B_TEXT, "batch": 8, "answer_tokens": 64,
              "steps": 6, "warm_up_steps": 2, "concurrency": [1, 8, 32], "new_tokens": 32,
              "kv_cache_bytes": 16 << 30},
    "dry-run": {**TINY_PRESETS["tiny"], "qformer_layers": 2,
                "own_size_text": {**TINY_PRESETS["tiny"]["text"], "num_hidden_layers": 4},
                "batch": 2, "answer_tokens": 8, "steps": 2, "warm_up_steps": 1, "concurrency": [1, 2],
                "new_tokens": 4, "kv_cache_bytes": 1 << 30},
}
CLIP_SECONDS = 30.0
PROMPT_TOKENS = 6  # "<|eng|><|deu|>" and the task's instruction, as the processor writes them (about)


def device_and_name() -> tuple[torch.device, str]:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))), torch.cuda.get_device_name()
    from llmsrt.inference.quantization import describe_cpu

    return torch.device("cpu"), describe_cpu()


def training_examples(config, shapes: dict, count: int) -> list[dict]:
    """SRT training examples of the processor's layout: 80 audio placeholders, the prompt, the answer (labels)."""
    generator = torch.Generator().manual_seed(0)
    queries, answer = config.num_query_tokens, shapes["answer_tokens"]
    vocab = config.text_config.vocab_size
    examples = []
    for _ in range(count):
        text = torch.randint(10, vocab, (PROMPT_TOKENS + answer,), generator=generator)
        text[text == config.audio_token_id] = 11
        input_ids = torch.cat([torch.full((queries,), config.audio_token_id), text])
        labels = input_ids.clone()
        labels[: queries + PROMPT_TOKENS] = -100
        examples.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
                         "input_features": torch.randn(shapes["audio"]["mels"], 3000, generator=generator),
                         "input_features_mask": torch.ones(3000, dtype=torch.long)})
    return examples


def train(shapes_name: str, fsdp: bool) -> dict:
    from transformers import TrainerCallback, TrainingArguments, default_data_collator
    from vllm_throughput import llmsrt_with_processor

    from llmsrt.training.model_setup import configure_trainable
    from llmsrt.training.sharding import sharding_in_effect
    from llmsrt.training.trainer import LLMSRTTrainer

    shapes = SHAPES[shapes_name]
    device, device_name = device_and_name()
    model, _ = llmsrt_with_processor(shapes, device)
    model.audio_encoder.to(torch.bfloat16)  # the recipe's model_dtype: bfloat16 (the adapter stays float32)
    model.language_model.to(torch.bfloat16)
    model = configure_trainable(model, ["adapter", "lora"])
    steps = shapes["warm_up_steps"] + shapes["steps"]
    step_seconds = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_seconds.append(time.perf_counter() - self.started)

    cpu = device.type == "cpu"
    options = {"fsdp": "full_shard auto_wrap", "fsdp_config": str(ROOT / "configs" / "trainer-fsdp.json")} if fsdp \
        else {}
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="gpu-check-"), per_device_train_batch_size=shapes["batch"],
        # bf16 autocast on the GPU; a CPU dry run stays float32 (CPUs without native bf16 emulate it, slowly)
        max_steps=steps, learning_rate=1e-4, bf16=not cpu, use_cpu=cpu, ddp_backend="gloo" if cpu and fsdp else None,
        save_strategy="no", report_to="none", logging_steps=1, remove_unused_columns=False, disable_tqdm=True,
        dataloader_num_workers=0, **options,
    )
    trainer = LLMSRTTrainer(model=model, args=args, train_dataset=training_examples(model.config, shapes,
                                                                                     steps * shapes["batch"]),
                            data_collator=default_data_collator, callbacks=[StepTimer()])
    with PeakMemory(device) as peak:
        trainer.train()
    timed = step_seconds[shapes["warm_up_steps"]:]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"part": "train", "mode": "fsdp2" if fsdp else "single", "device": device_name,
            "sharding": sharding_in_effect(trainer.model_wrapped, trainer.accelerator),
            "processes": trainer.accelerator.num_processes, "batch": shapes["batch"], "clip_seconds": CLIP_SECONDS,
            "answer_tokens": shapes["answer_tokens"], "steps_timed": len(timed),
            "step_seconds_median": statistics.median(timed), "clips_per_second": shapes["batch"] /
            statistics.median(timed), "peak_memory_gib": peak.gib, "trainable_parameters": trainable,
            "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]}


def infer(shapes_name: str) -> dict:
    try:
        import vllm  # noqa: F401
    except ImportError as error:
        return {"part": "infer", "skipped": f"vLLM is not importable here ({error})"}
    from vllm_throughput import QWEN2AUDIO_PROMPT, bench_vllm, close_engine, save_llmsrt, save_qwen2audio, vllm_engine

    from llmsrt.serving.prompts import request_prompt

    shapes = SHAPES[shapes_name]
    device, device_name = device_and_name()
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    torch_dtype = getattr(torch, dtype)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-infer-"))
    _, processor = save_llmsrt(work / "llmsrt", shapes, device, torch_dtype)
    engines = {
        "llmsrt": (work / "llmsrt", request_prompt(processor, "srt", "eng", "deu"), 512),
        "qwen2audio-equal-llm": (work / "qwen2audio-equal", QWEN2AUDIO_PROMPT, 1024),
        "qwen2audio-own-size": (work / "qwen2audio-own", QWEN2AUDIO_PROMPT, 1024),
    }
    save_qwen2audio(work / "qwen2audio-equal", shapes, device, torch_dtype)
    save_qwen2audio(work / "qwen2audio-own", {**shapes, "text": shapes["own_size_text"]}, device, torch_dtype)
    torch.cuda.empty_cache() if device.type == "cuda" else None
    rows = []
    for engine, (folder, prompt, max_model_len) in engines.items():
        llm = vllm_engine(folder, max(shapes["concurrency"]), max_model_len, dtype, shapes["kv_cache_bytes"])
        for concurrency in shapes["concurrency"]:
            rows.append(bench_vllm(llm, engine, prompt, CLIP_SECONDS, concurrency, 1, shapes["new_tokens"],
                                   warm_up=concurrency == shapes["concurrency"][0]))
        close_engine(llm)
    speedups = {}
    for concurrency in shapes["concurrency"]:
        rate = {row["engine"]: row["clips_per_second"] for row in rows if row["concurrency"] == concurrency}
        speedups[str(concurrency)] = {"vs_equal_llm": rate["llmsrt"] / rate["qwen2audio-equal-llm"],
                                      "vs_own_size": rate["llmsrt"] / rate["qwen2audio-own-size"]}
    return {"part": "infer", "device": device_name, "dtype": dtype, "clip_seconds": CLIP_SECONDS, "rows": rows,
            "llmsrt_speedup_by_concurrency": speedups}


def combine(parts: list[Path], shapes_name: str) -> dict:
    results = [json.loads(part.read_text()) for part in parts if part.is_file()]
    missing = [str(part) for part in parts if not part.is_file()]
    return {"check": "benchmarks/gpu/check.sh", "shapes": shapes_name, "sizes": SHAPES[shapes_name],
            "torch": torch.__version__, "parts": results, "failed_parts": missing}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "infer", "combine"])
    parser.add_argument("parts", nargs="*", type=Path)
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="paper")
    parser.add_argument("--fsdp", action="store_true")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "train":
        result = train(args.shapes, args.fsdp)
    elif args.command == "infer":
        result = infer(args.shapes)
    else:
        result = combine(args.parts, args.shapes)
    if int(os.environ.get("RANK", 0)) == 0:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({key: value for key, value in result.items() if key not in ("rows", "sizes", "parts")}))


if __name__ == "__main__":
    main()
