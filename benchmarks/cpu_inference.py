"""Benchmark 6: llmsrt's CPU path against the CTranslate2 int8 cascade a CPU user would otherwise run, on the same
demo test clips.

    python benchmarks/cpu_inference.py [--clips 24] [--threads 2] [--work_dir /tmp/llmsrt-bench] \
        [--systems llmsrt:fp32:1 llmsrt:int8:1 llmsrt:int8:8 cascade:int8:1] \
        [--output benchmarks/results/cpu-inference-demo.json]

Systems (`name:precision:batch`), each run in its own process (so that its peak resident memory is its own):
- `llmsrt` (precision `fp32`, `bf16`, `int8`, or `int8+SUFFIX...`: int8 except the linear layers whose names end
  with a SUFFIX): the demo's LLM-SRT (whisper-base + Qwen2.5-0.5B-Instruct from the offline mirrors, the demo recipe's
  adapter shape: 32 queries, 2-layer Q-Former, +-1 time window, variable-length encoding) with a **freshly
  initialised adapter** (speed does not depend on its weights), greedy; `int8` = `llmsrt.inference.quantization
  .quantize_for_cpu` (int8 dynamic quantisation of the LLM's linear layers). So that it does the work a trained
  model would, each clip generates exactly as many tokens as its reference answer takes (transcript, tag pair,
  translation, end token); a batch of clips of similar answer length generates the longest one's.
- `cascade`: faster-whisper int8 on the CTranslate2 whisper-base of the offline mirror (greedy, language given),
  then Qwen2.5-0.5B-Instruct converted to CTranslate2 int8 (`ctranslate2.converters.TransformersConverter`,
  once, not timed) translating the transcript with the demo cascade's chat prompt (greedy, at most 40 tokens).

Prints seconds per clip, real-time factor (seconds of compute per second of audio), peak resident memory of the
process (load included), the ratios to the cascade, and for int8 the share of clips whose generated tokens equal
fp32's (the quality check a fresh adapter allows; BLEU needs a trained model: run eval.py with a quantised model).
Ratios are what counts: the machine may be shared.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / ".cache" / "llmsrt-models"
CORPUS = ROOT / ".cache" / "demo-corpus" / "test.jsonl"


def read_clips(count: int) -> list[dict]:
    """The first `count` test clips, one direction each, with their 16-kHz waveforms."""
    from llmsrt.audio_utils import load_audio_file

    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()[:count]]
    for row in rows:
        row["waveform"] = load_audio_file(str(CORPUS.parent / row["audio"]), 16000)
    return rows


def run_llmsrt(clips: list[dict], precision: str, batch_size: int) -> tuple[list, float]:
    import torch
    from translation_quality import apply_cpu_variant

    from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor

    whisper, llm = str(MODELS / "whisper-base"), str(MODELS / "qwen2.5-0.5b-instruct")
    processor = LLMSRTProcessor.from_pretrained_parts(whisper, llm, None, 32)
    torch.manual_seed(0)
    model = LLMSRTForConditionalGeneration.from_pretrained_parts(
        whisper, llm, audio_token_id=processor.audio_token_id, num_query_tokens=32,
        qformer_config={"num_hidden_layers": 2}, query_time_window=1, variable_length_encoding=True,
    ).eval()
    apply_cpu_variant(model, precision)
    for clip in clips:
        answer = processor.prompt_builder.answer("srt", clip["src_lang"], clip["tgt_lang"], clip["transcript"],
                                                 clip["translation"])
        clip["answer_tokens"] = len(processor.tokenizer(answer)["input_ids"]) + 1
    order = sorted(range(len(clips)), key=lambda index: clips[index]["answer_tokens"])
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]

    def generate(indices):
        rows = [clips[index] for index in indices]
        batch = processor(audio=[row["waveform"] for row in rows], sampling_rate=16000,
                          src_lang=[row["src_lang"] for row in rows], tgt_lang=[row["tgt_lang"] for row in rows])
        length = max(row["answer_tokens"] for row in rows)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=False, num_beams=1, no_repeat_ngram_size=0,
                                 min_new_tokens=length, max_new_tokens=length)
        return out[:, batch["input_ids"].shape[1]:].tolist()

    generate(batches[0][:1])  # warm-up, not timed
    tokens = [None] * len(clips)
    started = time.perf_counter()
    for indices in batches:
        for index, answer in zip(indices, generate(indices)):
            tokens[index] = answer[: clips[index]["answer_tokens"]]
    return tokens, time.perf_counter() - started


def qwen_ctranslate2(work_dir: Path) -> Path:
    """Qwen2.5-0.5B-Instruct in CTranslate2 int8 (converted once)."""
    target = work_dir / "qwen2.5-0.5b-instruct-ct2-int8"
    if not (target / "model.bin").is_file():
        import ctranslate2

        converter = ctranslate2.converters.TransformersConverter(str(MODELS / "qwen2.5-0.5b-instruct"))
        converter.convert(str(target), quantization="int8", force=True)
    return target


def whisper_ctranslate2(work_dir: Path) -> Path:
    """The mirror's CTranslate2 whisper-base with the `vocabulary.json` CTranslate2 reads (built from its
    tokenizer.json: the mirror's folder holds model.bin, config.json and tokenizer.json only)."""
    source, target = MODELS / "whisper-base-ct2", work_dir / "whisper-base-ct2"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (target / name).exists():
            (target / name).symlink_to(source / name)
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    vocabulary = dict(tokenizer["model"]["vocab"])
    vocabulary.update({token["content"]: token["id"] for token in tokenizer.get("added_tokens", [])})
    tokens = [None] * (max(vocabulary.values()) + 1)
    for token, index in vocabulary.items():
        tokens[index] = token
    # The timestamp tokens <|0.00|> ... <|30.00|> that follow <|notimestamps|> are not in tokenizer.json, but the
    # model's vocabulary (51,865 for whisper-base) has them, and faster-whisper's decoding refers to the first one.
    vocab_size = json.loads((MODELS / "whisper-base" / "config.json").read_text())["vocab_size"]
    tokens += [f"<|{0.02 * step:.2f}|>" for step in range(vocab_size - len(tokens))]
    (target / "vocabulary.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    return target


def run_cascade(clips: list[dict], threads: int, work_dir: Path) -> tuple[list, float]:
    import ctranslate2
    from faster_whisper import WhisperModel
    from transformers import AutoTokenizer

    from llmsrt.evaluation.cascade import TRANSLATION_INSTRUCTION, first_line
    from llmsrt.languages import get_language

    asr = WhisperModel(str(whisper_ctranslate2(work_dir)), device="cpu", compute_type="int8", cpu_threads=threads)
    llm_dir = qwen_ctranslate2(work_dir)
    generator = ctranslate2.Generator(str(llm_dir), device="cpu", compute_type="int8", intra_threads=threads)
    tokenizer = AutoTokenizer.from_pretrained(str(MODELS / "qwen2.5-0.5b-instruct"))

    def translate(clip):
        segments, _ = asr.transcribe(clip["waveform"], language=get_language(clip["src_lang"]).whisper, beam_size=1,
                                     without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
        transcript = " ".join(segment.text.strip() for segment in segments)
        instruction = TRANSLATION_INSTRUCTION.format(source=get_language(clip["src_lang"]).name,
                                                     target=get_language(clip["tgt_lang"]).name)
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": instruction + transcript}],
                                               tokenize=False, add_generation_prompt=True)
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        result = generator.generate_batch([tokens], max_length=40, sampling_topk=1, include_prompt_in_result=False,
                                          end_token="<|im_end|>")[0]
        return [transcript, first_line(tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True))]

    translate(clips[0])  # warm-up, not timed
    started = time.perf_counter()
    outputs = [translate(clip) for clip in clips]
    return outputs, time.perf_counter() - started


def worker(system: str, clips_count: int, threads: int, work_dir: Path) -> dict:
    import torch

    torch.set_num_threads(threads)
    name, precision, batch = system.split(":")
    clips = read_clips(clips_count)
    if name == "llmsrt":
        outputs, seconds = run_llmsrt(clips, precision, int(batch))
    elif name == "cascade":
        outputs, seconds = run_cascade(clips, threads, work_dir)
    else:
        raise ValueError(f"Unknown system {system!r}: llmsrt:PRECISION:BATCH or cascade:int8:1.")
    audio_seconds = sum(len(clip["waveform"]) / 16000 for clip in clips)
    return {
        "system": system, "clips": len(clips), "threads": threads, "seconds": round(seconds, 2),
        "seconds_per_clip": round(seconds / len(clips), 3), "real_time_factor": round(seconds / audio_seconds, 3),
        "audio_seconds": round(audio_seconds, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "outputs": outputs,
    }


def cpu_description(threads: int) -> str:
    """The processor's model name, whether it computes bf16 natively, the cores, and the threads each system used."""
    from llmsrt.inference.quantization import describe_cpu

    return f"{describe_cpu()}, {threads} thread(s) per system; load average at the end {os.getloadavg()[0]:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--systems", nargs="+", default=["llmsrt:fp32:1", "llmsrt:int8:1", "llmsrt:int8:8",
                                                          "cascade:int8:1"])
    parser.add_argument("--work_dir", default="/tmp/llmsrt-bench")
    parser.add_argument("--output", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print("ROW " + json.dumps(worker(args.worker, args.clips, args.threads, work_dir)))
        return
    rows = []
    for system in args.systems:
        command = [sys.executable, __file__, "--worker", system, "--clips", str(args.clips), "--threads",
                   str(args.threads), "--work_dir", str(work_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
        finished = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        lines = [line for line in finished.stdout.splitlines() if line.startswith("ROW ")]
        if finished.returncode or not lines:
            raise RuntimeError(f"{system} failed: {finished.stderr[-2000:]}")
        rows.append(json.loads(lines[-1][4:]))
        print(f"{system}: {rows[-1]['seconds_per_clip']} s/clip, RTF {rows[-1]['real_time_factor']}, "
              f"peak RSS {rows[-1]['peak_rss_gib']} GiB", flush=True)
    by_system = {row["system"]: row for row in rows}
    cascade = next((row for row in rows if row["system"].startswith("cascade")), None)
    fp32 = by_system.get("llmsrt:fp32:1")
    print(f"\n{'system':<16} {'s/clip':>8} {'RTF':>7} {'peak GiB':>9} {'vs cascade':>11} {'vs fp32 b1':>11} "
          f"{'= fp32 tokens':>14}")
    for row in rows:
        row["speedup_vs_cascade"] = round(cascade["seconds"] / row["seconds"], 2) if cascade else None
        row["speedup_vs_llmsrt_fp32_b1"] = round(fp32["seconds"] / row["seconds"], 2) if fp32 else None
        same = None
        if fp32 and row["system"].startswith("llmsrt") and row is not fp32:
            same = sum(a == b for a, b in zip(row["outputs"], fp32["outputs"])) / len(rows[0]["outputs"])
        row["share_of_clips_with_fp32_tokens"] = same
        print(f"{row['system']:<16} {row['seconds_per_clip']:>8} {row['real_time_factor']:>7} "
              f"{row['peak_rss_gib']:>9} {str(row['speedup_vs_cascade']) + 'x':>11} "
              f"{str(row['speedup_vs_llmsrt_fp32_b1']) + 'x':>11} {'' if same is None else f'{same:.0%}':>14}")
    if args.output:
        Path(args.output).write_text(json.dumps({"device": cpu_description(args.threads),
                                                 "clips": args.clips, "rows": rows}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
