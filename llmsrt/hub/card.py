"""Model cards for trained LLM-SRT folders: Hub-valid YAML metadata (with `model-index`), usage, training, results."""

import json
from importlib.resources import files
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..configuration_llmsrt import LLMSRTConfig
from ..evaluation.metrics import METRIC_RULES
from ..evaluation.result_tables import METRIC_LABELS, matrix_markdown

TEMPLATE = files("llmsrt.model_cards") / "template.md"
STAGE_ORDER = ("asr", "smt", "srt")


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and name.count("/") == 1 and not Path(name).exists()


def _training_section(stage_infos: list[dict]) -> str:
    if not stage_infos:
        return "Curriculum ASR -> SMT -> SRT (see the paper); no stage records were found next to this folder."
    lines = ["| stage | trained parts | steps | learning rate | seconds |", "|---|---|---|---|---|"]
    for stage in stage_infos:
        settings = stage.get("settings", {})
        lines.append(f"| {stage['stage']} | {', '.join(stage['trained_parts'])} | {stage['global_step']} | "
                     f"{settings.get('learning_rate', '')} | {stage.get('train_seconds', '')} |")
    return "Each stage starts from the previous stage's final weights.\n\n" + "\n".join(lines)


def _converted_section(source_checkpoint: str, license: str, summary: str | None, lora_merged: bool) -> str:
    text = (f"Trained by the LLM-SRT authors with the paper's curriculum, and converted from their checkpoint "
            f"`{source_checkpoint}` (Hub: `yxdu/llm-srt`; licence `{license}`, which this folder keeps) with "
            "`python -m llmsrt.conversion.convert_llm_srt_checkpoint`"
            + (": LoRA merged into the LLM." if lora_merged else ": no LoRA applied, the base LLM's weights."))
    if summary:
        text += "\n\nWhat the converter found and did:\n\n```\n" + summary + "\n```"
    return text


# The evaluation section of a converted folder before anything was measured on it.
CONVERTED_NOT_MEASURED = (
    "Nothing was measured on real data when this folder was written. The conversion itself is checked on tiny "
    "random models written in the reference's layout (`tests/test_convert_llm_srt_checkpoint.py`: the converted "
    "folder gives the reference computation's logits). The authors report 21.2 average BLEU over the 210 FLEURS "
    "directions of their 3B model; `python eval.py --model THIS_FOLDER --dataset fleurs --dataset_path FLEURS "
    "--directions all` measures this folder with the paper's decoding (see llmsrt's docs/conversion.md)."
)


def stage_records(model_dir: Path) -> list[dict]:
    """stage_info.json of the folder and of its sibling stage folders (a curriculum output), in stage order."""
    records = {}
    for folder in [model_dir, *(model_dir.parent / stage for stage in STAGE_ORDER)]:
        path = folder / "stage_info.json"
        if path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            records[record["stage"]] = record
    return [records[stage] for stage in STAGE_ORDER if stage in records]


def eval_results(results: dict, dataset_name: str, dataset_type: str) -> list[EvalResult]:
    """`model-index` entries: average BLEU / chrF++ and each direction's BLEU."""
    entries = []
    task = {"task_type": "automatic-speech-recognition", "task_name": "Speech Translation"}
    data = {"dataset_type": dataset_type, "dataset_name": dataset_name}
    bleu = METRIC_RULES[results.get("settings", {}).get("metric_rule", "v1")]  # spbleu under MCAT's rule
    for metric, label in ((bleu, METRIC_LABELS[bleu]), ("chrf++", "chrF++"), ("comet", "COMET")):
        average = results.get("averages", {}).get(metric, {}).get("all")
        if average is not None:
            entries.append(EvalResult(**task, **data, metric_type=metric, metric_value=round(average, 2),
                                      metric_name=f"{label} (average over directions)"))
    for direction, scores in results.get("directions", {}).items():
        entries.append(EvalResult(**task, **data, dataset_config=direction, metric_type=bleu,
                                  metric_value=round(scores[bleu], 2),
                                  metric_name=f"{METRIC_LABELS[bleu]} {direction}"))
    return entries


def render_model_card(
    model_dir: str | Path,
    results: dict | None = None,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    dataset_name: str = "evaluation set",
    dataset_type: str = "custom",
    datasets: list[str] | None = None,
    languages: list[str] | None = None,
    source_checkpoint: str | None = None,
    conversion_summary: str | None = None,
    lora_merged: bool = True,
) -> ModelCard:
    """Render the card of a saved LLM-SRT folder (results: the `results.json` of `eval.py`; `source_checkpoint`:
    the authors' file a folder was converted from, named in the training section with its licence, with the
    converter's `conversion_summary`; `lora_merged`: whether LoRA is in the LLM's weights)."""
    model_dir = Path(model_dir)
    config = LLMSRTConfig.from_pretrained(model_dir)
    results = results or {}
    directions = results.get("directions", {})
    languages = languages or sorted({s["src_lang"] for s in directions.values()} |
                                    {s["tgt_lang"] for s in directions.values()})
    base_models = [name for name in (config.audio_model_name, config.text_model_name) if _is_hub_id(name)]
    repo_id = repo_id or model_dir.name
    card_data = ModelCardData(
        language=languages or None,
        license=license,
        library_name="transformers",
        pipeline_tag="automatic-speech-recognition",
        base_model=base_models or None,
        datasets=datasets,
        tags=["speech-translation", "llm-srt", "whisper", "qformer", "lora", "custom_code"],
        model_name=repo_id,
        eval_results=eval_results(results, dataset_name, dataset_type) or None,
    )
    evaluation = "No evaluation results were given." if source_checkpoint is None else CONVERTED_NOT_MEASURED
    if directions:
        bleu = METRIC_RULES[results.get("settings", {}).get("metric_rule", "v1")]
        rule = ("spBLEU with sacrebleu's `flores200` tokenizer for every target (MCAT's rule)" if bleu == "spbleu"
                else "BLEU with sacrebleu, `char` tokenizer for tha/jpn/kor/zho/yue targets, `13a` otherwise")
        evaluation = (f"On {dataset_name} ({results.get('examples', '?')} clips; {rule}; chrF++; WER/CER of the "
                      f"transcription; COMET {results.get('comet', 'not computed')}).\n\n"
                      + matrix_markdown(directions, results.get("averages", {}), bleu))
    feature_seconds = 30
    preprocessor = model_dir / "processor_config.json"
    if preprocessor.is_file():
        extractor = json.loads(preprocessor.read_text()).get("feature_extractor", {})
        feature_seconds = extractor.get("chunk_length", feature_seconds)
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE.read_text(encoding="utf-8"),
        model_name=repo_id,
        repo_id=repo_id,
        num_query_tokens=config.num_query_tokens,
        audio_model=config.audio_model_name or "Whisper encoder",
        text_model=config.text_model_name or config.text_config.model_type,
        lora=f"LoRA r={config.lora_rank}, alpha={config.lora_alpha}, merged into the weights" if lora_merged
        else "no LoRA: the base weights",
        lora_rank=config.lora_rank,  # read by templates older than the `lora` line
        lora_alpha=config.lora_alpha,
        languages=languages or ["(see evaluation)"],
        training=_training_section(stage_records(model_dir)) if source_checkpoint is None
        else _converted_section(source_checkpoint, license, conversion_summary, lora_merged),
        evaluation=evaluation,
        max_seconds=feature_seconds,
    )
