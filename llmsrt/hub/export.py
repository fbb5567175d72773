"""Export a trained model (LoRA merged, processor, remote code, model card) to a folder, and upload it."""

import json
import logging
from pathlib import Path

from huggingface_hub import HfApi

from ..lora import merge_lora
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from ..processing_llmsrt import LLMSRTProcessor
from .card import render_model_card

logger = logging.getLogger(__name__)


def load_for_export(source: str | Path):
    """A saved LLM-SRT folder, or a peft adapter folder (LoRA + speech adapter) on top of its base model; LoRA is
    merged either way."""
    source = Path(source)
    adapter_config = source / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base_path = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        base = LLMSRTForConditionalGeneration.from_pretrained(base_path)
        model = PeftModel.from_pretrained(base, source)
        processor_source = source if (source / "processor_config.json").is_file() else base_path
        return merge_lora(model), LLMSRTProcessor.from_pretrained(processor_source)
    return merge_lora(LLMSRTForConditionalGeneration.from_pretrained(source)), LLMSRTProcessor.from_pretrained(source)


def export_model(source: str | Path, output_dir: str | Path, results: dict | None = None, **card_options) -> Path:
    """Write model (merged), processor, remote code and README.md (the model card) into `output_dir`."""
    import llmsrt  # noqa: F401  (registers the classes for Auto, so that code files and auto_map are written)

    model, processor = load_for_export(source)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    card = render_model_card(source, results=results, **card_options)
    card.save(output_dir / "README.md")
    if results:
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return output_dir


def push_folder(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
                token: str | None = None, commit_message: str = "Upload LLM-SRT model") -> str:
    """Create the repo (and the `revision` branch) if needed, then upload the folder. Returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", revision=revision,
                               commit_message=commit_message)
    logger.info("Uploaded %s to %s", folder, repo_id)
    return str(commit)
