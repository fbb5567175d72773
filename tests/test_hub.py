"""Model cards, export with LoRA merged (loaded in a fresh process) and the upload path up to the network call."""

import json
import textwrap

import pytest
import torch
from helpers import CORPUS, SAMPLING_RATE, WITHOUT_LLMSRT, make_clip, run_in_fresh_process, save_model
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from llmsrt.hub import export as export_module
from llmsrt.hub import export_model, render_model_card
from llmsrt.hub.__main__ import main as hub_cli
from llmsrt.lora import add_lora
from llmsrt.testing import build_tiny_model_and_processor

RESULTS = {
    "examples": 4,
    "comet": "skipped: not installed",
    "directions": {
        "eng-deu": {"src_lang": "eng", "tgt_lang": "deu", "bleu": 31.25, "chrf++": 55.0},
        "deu-eng": {"src_lang": "deu", "tgt_lang": "eng", "bleu": 27.5, "chrf++": 51.0},
    },
    "averages": {"bleu": {"all": 29.375, "eng->X": 31.25, "X->eng": 27.5},
                 "chrf++": {"all": 53.0, "eng->X": 55.0, "X->eng": 51.0}},
}


@pytest.fixture(scope="module")
def trained_adapter(tmp_path_factory):
    """A base model folder and a peft adapter folder (LoRA + speech adapter) trained away from zero."""
    root = tmp_path_factory.mktemp("adapter")
    model, processor = build_tiny_model_and_processor(CORPUS)
    save_model(root / "base", model, processor)
    peft_model = add_lora(model)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name or ("modules_to_save" in name and "query_tokens" in name):
                parameter.add_(torch.randn_like(parameter) * 0.2)
    peft_model.peft_config["default"].base_model_name_or_path = str(root / "base")
    peft_model.save_pretrained(root / "adapter")
    return root, peft_model.eval(), processor


def test_card_yaml_parses_and_holds_results(saved_tiny, tmp_path):
    card = render_model_card(saved_tiny, results=RESULTS, repo_id="me/llmsrt-tiny", dataset_name="toy test",
                             datasets=["google/fleurs"])
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    assert data.pipeline_tag == "automatic-speech-recognition" and "speech-translation" in data.tags
    assert sorted(data.language) == ["deu", "eng"] and data.datasets == ["google/fleurs"]
    name, results = model_index_to_eval_results(data.to_dict()["model-index"])
    assert name == "me/llmsrt-tiny"
    found = {(r.metric_name, r.metric_value) for r in results}
    assert ("BLEU (average over directions)", 29.38) in found and ("BLEU eng-deu", 31.25) in found
    assert "trust_remote_code=True" in loaded.text and "pipeline(\"speech-translation\"" in loaded.text
    assert "| **eng** |" in loaded.text  # the BLEU matrix


def test_card_names_hub_base_models(tmp_path, tiny):
    model, processor = tiny
    model.config.audio_model_name, model.config.text_model_name = "openai/whisper-base", "Qwen/Qwen2.5-0.5B"
    try:
        model.save_pretrained(tmp_path)
    finally:
        model.config.audio_model_name = model.config.text_model_name = None
    processor.save_pretrained(tmp_path)
    assert render_model_card(tmp_path).data.base_model == ["openai/whisper-base", "Qwen/Qwen2.5-0.5B"]


FRESH = WITHOUT_LLMSRT + textwrap.dedent(
    """
    import numpy as np, torch
    from transformers import AutoModel, AutoProcessor
    folder, clip, out = sys.argv[1:4]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    batch = processor(audio=np.load(clip), sampling_rate=16000, src_lang="eng", tgt_lang="deu")
    with torch.no_grad():
        torch.save(model(**batch).logits, out)
    """
)


def test_exported_folder_loads_in_a_fresh_process_with_lora_merged(trained_adapter, tmp_path):
    root, peft_model, processor = trained_adapter
    folder = export_model(root / "adapter", tmp_path / "export", results=RESULTS, repo_id="me/x")
    names = {path.name for path in folder.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "modeling_llmsrt.py", "processing_llmsrt.py",
            "pipeline_llmsrt.py", "processor_config.json", "eval_results.json"} <= names
    assert "adapter_config.json" not in names
    clip = make_clip(1.2, 3)

    run_in_fresh_process(FRESH, clip, folder, "logits.pt", tmp_path)
    batch = processor(audio=clip, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    with torch.no_grad():
        expected = peft_model(**batch).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=1e-4, atol=1e-4)


class RecordingApi:
    """Stands in for the Hub's HTTP API only: records what would be sent."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        files = sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())
        self.calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))
        return f"https://huggingface.co/{repo_id}/commit/abc"


def test_export_command_pushes_with_private_and_revision(trained_adapter, tmp_path, monkeypatch, capsys):
    root, _, _ = trained_adapter
    RecordingApi.calls = []
    monkeypatch.setattr(export_module, "HfApi", RecordingApi)
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(RESULTS))
    assert hub_cli(["export", str(root / "adapter"), str(tmp_path / "out"), "--push", "--repo_id", "me/llmsrt",
                    "--private", "--revision", "v1", "--results", str(results_file)]) == 0
    kinds = [call[0] for call in RecordingApi.calls]
    assert kinds == ["create_repo", "create_branch", "upload_folder"]
    assert RecordingApi.calls[0][2]["private"] is True and RecordingApi.calls[1][2]["branch"] == "v1"
    upload = RecordingApi.calls[2][2]
    assert upload["revision"] == "v1" and "README.md" in upload["files"] and "model.safetensors" in upload["files"]
    assert ModelCard.load(tmp_path / "out" / "README.md").data.model_name == "me/llmsrt"
    with pytest.raises(SystemExit):
        hub_cli(["export", str(root / "adapter"), str(tmp_path / "o2"), "--push"])


def test_train_push_to_hub_exports_the_last_stage(saved_tiny, tmp_path, monkeypatch):
    from transformers import TrainingArguments

    from llmsrt.training.curriculum import push_final_stage

    RecordingApi.calls = []
    monkeypatch.setattr(export_module, "HfApi", RecordingApi)
    args = TrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="me/demo",
                             hub_private_repo=True, hub_revision="main", use_cpu=True, report_to="none")
    assert push_final_stage(saved_tiny, args).endswith("/commit/abc")
    assert (tmp_path / "export" / "README.md").is_file()
    assert RecordingApi.calls[0] == ("create_repo", "me/demo", {"repo_type": "model", "private": True,
                                                                  "exist_ok": True})
