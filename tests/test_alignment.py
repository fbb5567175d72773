"""The `align` stage (the adapter's outputs scored against the LLM's frozen embeddings), the queries' time windows
and the aligned adapter's output scale."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.data.toy import toy_texts
from llmsrt.encoder_cache import fingerprint
from llmsrt.testing import build_tiny_model_and_processor
from llmsrt.training import main, parse_train_args
from llmsrt.training.alignment import (
    CTCAlignmentHead,
    match_embedding_scale,
    transcript_token_ids,
    unreachable_transcripts,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "tiny.yaml")
ALIGN_SETTINGS = ["align.learning_rate=1e-2", "align.warmup_steps=2", "align.max_steps=24",
                  "align.per_device_train_batch_size=12"]
ALIGN = [RECIPE, "--num_query_tokens", "16", "--query_time_window", "1", "--disable_tqdm", "true"]


def info(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "stage_info.json").read_text())


def losses(stage_dir: Path) -> list[float]:
    state = json.loads((stage_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def aligned_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("align-run")
    finished = main([*ALIGN, "--curriculum_stages", "align", "asr", "--align_loss", "ctc", "--output_dir", str(output),
                     "--stage_overrides", *ALIGN_SETTINGS, "asr.max_steps=2", "--logging_steps", "4",
                     "--save_strategy", "no"])
    return output, finished


@pytest.mark.slow
def test_align_loss_falls_and_its_folder_is_a_plain_model(aligned_run):
    output, finished = aligned_run
    assert list(finished) == ["align", "asr"]
    align = losses(output / "align")
    assert align[-1] < 0.7 * align[0], align
    stage = info(output / "align")
    assert stage["trained_parts"] == ["adapter"] and stage["ctc_vocabulary_size"] > 20
    assert stage["ctc_unreachable_transcripts"] == 0
    assert any(name.startswith("head.") for name in stage["trainable_parameters"])  # the head trains...
    weights = load_file(output / "align" / "model.safetensors")
    assert not any(name.startswith("head.") for name in weights)  # ...but the folder holds the model alone
    model = LLMSRTForConditionalGeneration.from_pretrained(output / "align")
    assert model.config.query_time_window == 1
    assert fingerprint(model) == stage["final_fingerprint"]
    # the folder's adapter speaks at the scale of the LLM's tokens (--align_output_scale embedding, the default)
    assert stage["output_scale_factor"] < 0.5
    token_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().item()
    with torch.no_grad():
        audio_norm = model.speech_adapter(torch.randn(3, 40, model.config.audio_config.d_model)).norm(dim=-1).mean()
    assert audio_norm.item() == pytest.approx(token_norm, rel=0.15)


@pytest.mark.slow
def test_the_next_stage_starts_from_the_aligned_adapter(aligned_run):
    output, _ = aligned_run
    assert info(output / "asr")["initial_fingerprint"] == info(output / "align")["final_fingerprint"]
    assert info(output / "align")["initial_fingerprint"] != info(output / "align")["final_fingerprint"]


@pytest.mark.slow
def test_align_resumes_exactly_from_a_checkpoint(tmp_path):
    common = [*ALIGN, "--curriculum_stages", "align", "--stage_overrides", *ALIGN_SETTINGS,
              "--save_strategy", "steps", "--save_steps", "8", "--logging_steps", "4"]
    main([*common, "--output_dir", str(tmp_path / "whole")])
    checkpoint = tmp_path / "whole" / "checkpoints" / "align" / "checkpoint-16"
    weights = load_file(checkpoint / "model.safetensors")
    assert {"head.blank", "head.log_scale"} <= set(weights) and not any("language_model" in k for k in weights)
    interrupted = tmp_path / "interrupted" / "checkpoints" / "align" / "checkpoint-16"
    shutil.copytree(checkpoint, interrupted)  # what a run killed after step 16 leaves
    main([*common, "--output_dir", str(tmp_path / "interrupted"), "--resume_from_checkpoint", "true"])
    resumed, whole = info(tmp_path / "interrupted" / "align"), info(tmp_path / "whole" / "align")
    assert resumed["resumed_from"] == str(interrupted)
    assert resumed["final_fingerprint"] == whole["final_fingerprint"]


def test_align_must_come_first_and_trains_the_adapter_only():
    with pytest.raises(ValueError, match="align.*first in --curriculum_stages"):
        parse_train_args([RECIPE, "--curriculum_stages", "asr", "align"])
    with pytest.raises(ValueError, match="adapter only.*'lora'"):
        parse_train_args([RECIPE, "--stage_overrides", "align.train=adapter,lora"])
    with pytest.raises(ValueError, match="proportional, ctc, got 'timed'"):
        parse_train_args([RECIPE, "--align_loss", "timed"])


def test_proportional_targets_split_the_clip_by_letters():
    head = CTCAlignmentHead(torch.randn(10, 4), [2, 5, 7], character_lengths=[1, 3, 2])
    targets = head.proportional_targets(torch.tensor([[2, 5, -100], [7, 9, -100]]), 4)
    # "a" + "bcd": the first quarter is token 2 (class 1), the rest token 5 (class 2); token 9 is not writable.
    assert targets.tolist() == [[1, 2, 2, 2], [3, 3, 3, -100]]


@pytest.mark.slow
def test_the_default_proportional_align_loss_falls(tmp_path):
    main([*ALIGN, "--curriculum_stages", "align", "--stage_overrides",
          *ALIGN_SETTINGS, "--logging_steps", "4", "--save_strategy", "no", "--output_dir", str(tmp_path)])
    align = losses(tmp_path / "align")
    assert info(tmp_path / "align")["align_loss"] == "proportional"
    assert align[-1] < 0.85 * align[0] and align == sorted(align, reverse=True), align


def test_ctc_targets_and_reachability():
    embeddings = torch.randn(10, 4)
    head = CTCAlignmentHead(embeddings, [2, 5, 7])
    classes, lengths = head.targets(torch.tensor([[5, 2, 9, -100], [7, 7, -100, -100]]))
    assert classes.tolist() == [2, 1, 3, 3] and lengths.tolist() == [2, 2]  # token 9 is not writable
    _, processor = build_tiny_model_and_processor(toy_texts())
    longest = max(len(processor.tokenizer(text)["input_ids"]) for text in toy_texts())
    token_rows = transcript_token_ids({"transcript": toy_texts()}, processor.tokenizer)
    assert unreachable_transcripts(token_rows, 64) == 0
    assert unreachable_transcripts(token_rows, longest - 1) >= 1


def test_time_window_mask_orders_the_queries_in_time():
    model, _ = build_tiny_model_and_processor(toy_texts(), num_query_tokens=5, query_time_window=0)
    frame_mask = torch.tensor([[1] * 10 + [0] * 2, [1] * 5 + [0] * 7])
    allowed = model.speech_adapter.time_window_mask(frame_mask, torch.float32)[:, 0] == 0  # (B, Q, T)
    assert [row.nonzero().flatten().tolist() for row in allowed[0]] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert [row.nonzero().flatten().tolist() for row in allowed[1]] == [[0], [1], [2], [3], [4]]
    assert not allowed[:, :, 10:].any()  # padding is never attended
    widened = model.speech_adapter
    widened.query_time_window = 1
    allowed = widened.time_window_mask(frame_mask, torch.float32)[0, 0] == 0
    assert allowed[2].nonzero().flatten().tolist() == [2, 3, 4, 5, 6, 7]


def test_a_window_as_wide_as_the_clip_equals_global_attention():
    model, _ = build_tiny_model_and_processor(toy_texts(), num_query_tokens=4, query_time_window=4)
    frames = torch.randn(2, 30, model.config.audio_config.d_model)
    frame_mask = torch.ones(2, 30, dtype=torch.long)
    frame_mask[1, 20:] = 0
    windowed = model.speech_adapter(frames, frame_mask)
    model.speech_adapter.query_time_window = None
    assert torch.allclose(windowed, model.speech_adapter(frames, frame_mask), atol=1e-5)


def test_embedding_scale_keeps_directions_and_matches_the_token_norm():
    model, _ = build_tiny_model_and_processor(toy_texts())
    frames = torch.randn(2, 30, model.config.audio_config.d_model)
    with torch.no_grad():
        model.speech_adapter.projector.layer_norm.bias.normal_(0, 0.5)  # as after training: a bias too
        before = model.speech_adapter(frames)
        factor = match_embedding_scale(model)
        after = model.speech_adapter(frames)
    token_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().item()
    assert after.norm(dim=-1).mean().item() == pytest.approx(token_norm, rel=0.1)
    assert torch.allclose(after, before * factor, atol=1e-5)  # a pure rescale: the aligned directions stay
