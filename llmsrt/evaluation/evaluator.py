"""Batched SRT generation over an evaluation set, scoring, and the report files of `eval.py`."""

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..answer_decoding import PAPER_DECODING
from ..data import CurriculumCollator, clip_waveform
from ..data.arguments import DataSource
from ..data.schema import SAMPLING_RATE
from ..diagnostics.audio_gain import audio_gain_report
from ..inference.quantization import CPU_MODES, quantize_for_cpu
from ..language_id import language_id_accuracy
from .metrics import METRIC_RULES, check_metric_rule, comet_scorer, require_spbleu
from .result_tables import (
    audio_gain_markdown,
    delta_markdown,
    language_id_markdown,
    matrix_markdown,
    read_reference,
    save_heatmap,
)
from .scoring import direction_of, prediction_record, score_records

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class EvalArguments(DataSource):
    """eval.py's arguments: the model, a `DataSource` (`--dataset`, `--directions`, ...) with the split to read, and
    the decoding and scoring settings."""

    model: str = field(metadata={"help": "A saved LLM-SRT folder or Hub id."})
    output_dir: str = field(metadata={"help": "Where predictions, results, matrix and heatmap are written."})
    manifest: str | None = field(default=None, metadata={"help": "JSONL/CSV manifest with translations."})
    split: str = field(default="test")
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate the first N examples only."})
    batch_size: int = field(default=8)
    num_beams: int = field(default=PAPER_DECODING["num_beams"])
    max_new_tokens: int = field(default=PAPER_DECODING["max_new_tokens"])
    no_repeat_ngram_size: int = field(default=PAPER_DECODING["no_repeat_ngram_size"])
    repetition_penalty: float = field(
        default=PAPER_DECODING["repetition_penalty"],
        metadata={"help": "Over the generated answer only; passed to generate, so a folder's generation config "
                          "cannot change it unrecorded."},
    )
    metric_rule: str = field(
        default="v1",
        metadata={"help": "v1: BLEU with char (tha jpn kor zho yue lao mya) or 13a by target language, as LLM-SRT v1.0 "
                          "scores; v2: spBLEU (sacrebleu's flores200 tokenizer, every language) as MCAT (v2.0) "
                          "scores. chrF++, WER/CER and COMET in both."},
    )
    chinese_tokenizer: str = field(default="char", metadata={"help": "BLEU tokenizer for zho/yue: char or zh."})
    japanese_tokenizer: str = field(default="char", metadata={"help": "BLEU tokenizer for jpn: char or ja-mecab."})
    comet_model: str | None = field(
        default="Unbabel/wmt22-comet-da", metadata={"help": "COMET model (Hub id or .ckpt); none to skip."}
    )
    reference_csv: str | None = field(
        default=None, metadata={"help": "Published per-direction scores (src,tgt,bleu,...) for a delta table."}
    )
    device: str | None = field(default=None, metadata={"help": "cuda, cpu... (default: cuda when available)."})
    audio_gain: bool = field(
        default=True, metadata={"help": "Measure the audio gain (teacher-forced loss with swapped vs own audio)."}
    )
    quantize: str = field(
        default="none",
        metadata={"help": "On the CPU: int8 (dynamic int8 linear layers of the LLM, its MLP output projections "
                          "kept in float) or bf16 (llmsrt.inference.quantization.quantize_for_cpu), to check their "
                          "quality; none (fp32)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.quantize not in ("none", *CPU_MODES):
            raise ValueError(f"--quantize takes none, {' or '.join(CPU_MODES)}; got {self.quantize!r}.")
        check_metric_rule(self.metric_rule)

    def check_scoring(self) -> None:
        """Fail before any generation where the scores cannot be computed or compared: spBLEU's model (v2) missing
        offline, or a reference table without the rule's BLEU column."""
        if self.metric_rule == "v2":
            require_spbleu()
        if self.reference_csv:
            reference = read_reference(self.reference_csv)
            delta_markdown({}, reference, metric=METRIC_RULES[self.metric_rule])

    def tokenizer_overrides(self) -> dict[str, str]:
        return {"zho": self.chinese_tokenizer, "yue": self.chinese_tokenizer, "jpn": self.japanese_tokenizer}

    def decoding(self) -> dict:
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "repetition_penalty": self.repetition_penalty,
            "do_sample": False,
        }


def load_eval_examples(args: EvalArguments):
    from ..data.arguments import DataArguments
    from ..data.stage_data import load_stage_examples

    data_args = DataArguments(
        dataset=args.dataset, train_manifest=args.manifest, dataset_path=args.dataset_path, data_dir=args.data_dir,
        directions=[] if args.dataset == "manifest" else args.directions, languages=args.languages,
        train_split=args.split, skip_invalid_rows=args.skip_invalid_rows, max_train_samples=args.max_samples,
        source_languages=args.source_languages, target_languages=args.target_languages,
        centre_languages=args.centre_languages,
    )
    examples = load_stage_examples(data_args, "srt", args.output_dir)
    if args.dataset == "manifest" and args.directions and args.directions != ["all"]:
        wanted = set(args.directions)
        examples = examples.filter(lambda s, t: f"{s}-{t}" in wanted, input_columns=["src_lang", "tgt_lang"])
    return examples


def length_sorted_batches(examples, batch_size: int, window: int = 32):
    """Decode `window` batches' worth of audio at a time and batch them by length (less padding, fewer wasted
    encoder frames and tokens), yielding `(examples, waveforms)` pairs."""
    buffer = []
    for example in examples:
        buffer.append(example)
        if len(buffer) == batch_size * window:
            yield from _sorted(buffer, batch_size)
            buffer = []
    if buffer:
        yield from _sorted(buffer, batch_size)


def _sorted(buffer, batch_size):
    decoded = [(example, clip_waveform(example)) for example in buffer]  # cut to the encoder window, as in training
    decoded.sort(key=lambda pair: pair[1].size)
    for start in range(0, len(decoded), batch_size):
        chunk = decoded[start : start + batch_size]
        yield [example for example, _ in chunk], [waveform for _, waveform in chunk]


def predict_all(examples, batch_size: int, translate_batch, description: str = "translating") -> list[dict]:
    """Run `translate_batch(waveforms, src_langs, tgt_langs) -> [(transcription, translation), ...]` over
    length-sorted batches of `examples`, returning prediction records."""
    records = []
    total = len(examples) if hasattr(examples, "__len__") else None
    progress = tqdm(total=total, desc=description, unit="clip")
    for batch_examples, waveforms in length_sorted_batches(examples, batch_size):
        src = [example["src_lang"] for example in batch_examples]
        tgt = [example["tgt_lang"] for example in batch_examples]
        outputs = translate_batch(waveforms, src, tgt)
        records += [prediction_record(example, transcription, translation)
                    for example, (transcription, translation) in zip(batch_examples, outputs)]
        progress.update(len(batch_examples))
    progress.close()
    return records


@torch.no_grad()
def generate_predictions(model, processor, examples, batch_size: int, decoding: dict) -> list[dict]:
    """Speech -> transcription + translation for every example, as prediction records."""

    def translate_batch(waveforms, src, tgt):
        inputs = processor(audio=waveforms, sampling_rate=SAMPLING_RATE, src_lang=src, tgt_lang=tgt, task="srt")
        inputs = inputs.to(model.device)
        generated = model.generate(**inputs, **decoding)
        outputs = processor.post_process_speech_translation(generated[:, inputs["input_ids"].shape[1] :], "srt",
                                                            src, tgt)
        return [(output["transcription"], output["translation"]) for output in outputs]

    return predict_all(examples, batch_size, translate_batch)


def write_report(records: list[dict], output_dir: Path, args: EvalArguments, extra: dict | None = None) -> dict:
    """Score `records` and write predictions.jsonl, results.json, matrix.md, bleu_heatmap.png (and
    reference_delta.md). Returns the results."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    comet, comet_note = (None, "disabled (--comet_model none)")
    if args.comet_model and args.comet_model.lower() != "none":
        comet, comet_note = comet_scorer(args.comet_model)
    if comet is None:
        logger.warning("COMET skipped: %s", comet_note)
    results = score_records(records, args.tokenizer_overrides(), comet, args.metric_rule)
    bleu_name = METRIC_RULES[args.metric_rule]
    results["comet"] = "computed" if comet is not None else f"skipped: {comet_note}"
    results["settings"] = {key: value for key, value in asdict(args).items()}
    results.update(extra or {})
    (output_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    matrix = matrix_markdown(results["directions"], results["averages"], bleu_name)
    if results.get("audio_gain"):
        matrix += "\n" + audio_gain_markdown(results["audio_gain"])
    if results.get("language_id"):
        matrix += "\n" + language_id_markdown(results["language_id"])
    (output_dir / "matrix.md").write_text(matrix, encoding="utf-8")
    if results["directions"]:
        save_heatmap(results["directions"], output_dir / "bleu_heatmap.png", bleu_name)
    if args.reference_csv:
        reference = read_reference(args.reference_csv)
        columns = next(iter(reference.values()), {})
        compared = [bleu_name] + (["comet"] if comet is not None and "comet" in columns else [])
        tables = [delta_markdown(results["directions"], reference, metric=metric) for metric in compared]
        (output_dir / "reference_delta.md").write_text("\n".join(tables), encoding="utf-8")
    return results


def evaluate_model(args: EvalArguments) -> dict:
    """What `eval.py` does: load the model, translate the evaluation set, score it, write the report."""
    from ..modeling_llmsrt import LLMSRTForConditionalGeneration
    from ..processing_llmsrt import LLMSRTProcessor

    args.check_scoring()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = LLMSRTForConditionalGeneration.from_pretrained(args.model, dtype=dtype).to(device).eval()
    if args.quantize != "none":
        quantize_for_cpu(model, args.quantize)  # a ValueError on another device
    processor = LLMSRTProcessor.from_pretrained(args.model)
    examples = load_eval_examples(args)
    started = time.time()
    records = generate_predictions(model, processor, examples, args.batch_size, args.decoding())
    seconds = time.time() - started
    extra = {"model": args.model, "quantize": args.quantize, "generation_seconds": round(seconds, 2),
             "examples": len(records),
             "directions_evaluated": sorted({direction_of(r) for r in records})}
    if args.audio_gain:
        extra["audio_gain"] = evaluation_audio_gain(model, processor, examples, args.batch_size)
    if getattr(model, "language_id_head", None) is not None:
        extra["language_id"] = language_id_accuracy(model, processor, examples, args.batch_size)
    return write_report(records, Path(args.output_dir), args, extra)


def evaluation_audio_gain(model, processor, examples, batch_size: int) -> dict | None:
    """The audio gain (see `llmsrt.diagnostics.audio_gain`) of SRT teacher forcing on `examples`, per source language
    too."""
    return audio_gain_report(model, examples, CurriculumCollator(processor, task="srt"), batch_size, "eval")
