"""Offline batches on vLLM (`vllm.LLM`): clips in, llmsrt's answers out, and an evaluation set scored as eval.py does.

    python -m llmsrt.serving.offline --model DIR --manifest test.jsonl --output_dir OUT [--num_beams 1]

writes OUT/predictions.jsonl, results.json, matrix.md and bleu_heatmap.png with `llmsrt.evaluation.write_report`
(the files of `eval.py`), from vLLM's continuous batching instead of transformers' `generate`.

Decoding: greedy (`--num_beams 1`, the default) runs `LLM.generate`; `--num_beams N` runs vLLM's `LLM.beam_search`
(a beam search written over repeated one-token requests; it has no `no_repeat_ngram_size`, see docs/serving.md).
vLLM has no `no_repeat_ngram_size` processor: a value other than 0 is refused.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.schema import SAMPLING_RATE
from ..evaluation.evaluator import EvalArguments, load_eval_examples, predict_all, write_report
from ..processing_llmsrt import LLMSRTProcessor, one_per_clip
from .prompts import request_prompt

logger = logging.getLogger(__name__)

# Engine settings that fit a CPU run (vLLM's defaults reserve most of the machine's memory for the KV cache).
CPU_ENGINE_DEFAULTS = {"dtype": "float32", "enforce_eager": True, "kv_cache_memory_bytes": 1 << 30}


def load_llm(model: str, max_model_len: int = 1024, **engine_kwargs):
    """A `vllm.LLM` for a saved llmsrt folder, one clip per prompt. On a machine without a GPU the CPU defaults
    (`CPU_ENGINE_DEFAULTS`: float32, eager, a 1-GiB KV cache) apply unless given."""
    import torch
    from vllm import LLM

    if not torch.cuda.is_available():
        engine_kwargs = {**CPU_ENGINE_DEFAULTS, **engine_kwargs}
    return LLM(model=model, max_model_len=max_model_len, limit_mm_per_prompt={"audio": 1}, **engine_kwargs)


def vllm_prompts(
    processor: LLMSRTProcessor, waveforms, task="srt", src_lang="eng", tgt_lang="deu", text=None
) -> list[dict]:
    """One vLLM prompt per 16-kHz waveform, written by the folder's processor (`request_prompt`):
    `{"prompt": "<|audio|><|src|><|tgt|>", "multi_modal_data": ...}`. `task`, `src_lang`, `tgt_lang`, `text` are one
    value for all clips or one per clip, as for `LLMSRTProcessor`."""
    count = len(waveforms)
    return [
        {"prompt": request_prompt(processor, name, src, tgt, transcript),
         "multi_modal_data": {"audio": (np.asarray(waveform, dtype=np.float32), SAMPLING_RATE)}}
        for waveform, name, src, tgt, transcript in zip(
            waveforms, one_per_clip(task, count, "task"), one_per_clip(src_lang, count, "src_lang"),
            one_per_clip(tgt_lang, count, "tgt_lang"), one_per_clip(text, count, "text"))
    ]


def generate_token_ids(llm, prompts: list[dict], max_new_tokens: int = 400, num_beams: int = 1) -> list[list[int]]:
    """The answer ids of each prompt: greedy (`num_beams=1`) or vLLM's beam search (`num_beams > 1`)."""
    from vllm import SamplingParams
    from vllm.sampling_params import BeamSearchParams

    if num_beams == 1:
        outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_new_tokens), use_tqdm=False)
        return [list(output.outputs[0].token_ids) for output in outputs]
    outputs = llm.beam_search(prompts, BeamSearchParams(beam_width=num_beams, max_tokens=max_new_tokens))
    answers = []
    for output in outputs:
        best = output.sequences[0]  # sorted by vLLM's length-penalised score
        answers.append(best.tokens[len(best.orig_prompt["prompt_token_ids"]):])
    return answers


def translate(llm, processor: LLMSRTProcessor, waveforms, task="srt", src_lang="eng", tgt_lang="deu", text=None,
              max_new_tokens: int = 400, num_beams: int = 1) -> list[dict]:
    """`{"transcription", "translation"}` per clip, parsed by `processor.post_process_speech_translation` as for
    transformers' `generate`."""
    prompts = vllm_prompts(processor, waveforms, task, src_lang, tgt_lang, text)
    answers = generate_token_ids(llm, prompts, max_new_tokens, num_beams)
    return processor.post_process_speech_translation(answers, task, src_lang, tgt_lang, text)


@dataclass
class VLLMEvalArguments(EvalArguments):
    """eval.py's arguments, decoding greedily by default (vLLM has no `no_repeat_ngram_size`)."""

    num_beams: int = field(default=1, metadata={"help": "1: greedy; more: vLLM's beam search."})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "Only 0: vLLM has no such processor."})
    max_model_len: int = field(default=1024, metadata={"help": "vLLM's max_model_len (prompt + answer tokens)."})
    batch_size: int = field(default=64, metadata={"help": "Clips handed to vLLM at a time (it batches them itself)."})

    def __post_init__(self):
        super().__post_init__()
        if self.no_repeat_ngram_size:
            raise ValueError(f"--no_repeat_ngram_size {self.no_repeat_ngram_size}: vLLM has no n-gram ban; pass 0 "
                             "(or score with eval.py, which decodes with transformers).")
        if self.quantize != "none":
            raise ValueError("--quantize is eval.py's (transformers on the CPU); vLLM reads the folder as saved.")
        if self.audio_gain:
            logger.info("The audio gain is teacher-forced in transformers: not measured on vLLM (eval.py does).")
            self.audio_gain = False


def evaluate_with_vllm(args: VLLMEvalArguments, llm=None) -> dict:
    """eval.py's report for `args.model`, the answers generated by vLLM. `llm`: an existing `vllm.LLM` for it."""
    llm = llm or load_llm(args.model, args.max_model_len)
    processor = LLMSRTProcessor.from_pretrained(args.model)
    examples = load_eval_examples(args)

    def translate_batch(waveforms, src, tgt):
        outputs = translate(llm, processor, waveforms, "srt", src, tgt, max_new_tokens=args.max_new_tokens,
                            num_beams=args.num_beams)
        return [(output["transcription"], output["translation"]) for output in outputs]

    started = time.time()
    records = predict_all(examples, args.batch_size, translate_batch, description="translating (vLLM)")
    extra = {"model": args.model, "engine": "vllm", "generation_seconds": round(time.time() - started, 2),
             "examples": len(records)}
    return write_report(records, Path(args.output_dir), args, extra)


def main():
    from transformers import HfArgumentParser

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    (arguments,) = HfArgumentParser(VLLMEvalArguments).parse_args_into_dataclasses()
    evaluate_with_vllm(arguments)
    print(open(os.path.join(arguments.output_dir, "matrix.md"), encoding="utf-8").read())


if __name__ == "__main__":
    main()
