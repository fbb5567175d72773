"""The `align` stage (CTC through the LLM's frozen embeddings), the queries' time windows and the adapter's
output-scale initialisation."""

import json
import shutil
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration
from llmsrt.data.toy import toy_texts
from llmsrt.encoder_cache import fingerprint
from llmsrt.testing import build_tiny_model_and_processor
from llmsrt.training import main, parse_train_args
from llmsrt.training.model_setup import build_initial_model
from llmsrt.training.alignment import (
    ALIGN_MASK_TIME_LENGTH,
    CTCAlignmentHead,
    hold_out_transcripts,
    LLMSRTForAlignment,
    mask_frames,
    match_embedding_scale,
    transcript_share_point,
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
    finished = main([*ALIGN, "--curriculum_stages", "align", "asr", "--output_dir", str(output),
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
    with pytest.raises(ValueError, match="only come first"):
        parse_train_args([RECIPE, "--curriculum_stages", "asr", "align"])
    with pytest.raises(ValueError, match="adapter only"):
        parse_train_args([RECIPE, "--stage_overrides", "align.train=adapter,lora"])
    with pytest.raises(ValueError, match="--align_loss"):
        parse_train_args([RECIPE, "--align_loss", "mse"])
    with pytest.raises(ValueError, match="--align_mask_time_prob is a share"):
        parse_train_args([RECIPE, "--align_mask_time_prob", "1.5"])


def test_spec_augment_hides_spans_of_real_frames_only():
    torch.manual_seed(0)
    frames = torch.randn(4, 200, 64) + 3  # no frame or channel is zero before masking
    frame_mask = torch.ones(4, 200, dtype=torch.long)
    frame_mask[1, 100:] = 0
    hidden = mask_frames(frames, frame_mask, mask_time_prob=0.3, mask_feature_prob=0.0) == 0
    assert (hidden.all(-1) == hidden.any(-1)).all()  # a hidden frame is hidden in every channel
    hidden_frames = hidden.all(-1)
    assert not hidden_frames[1, 100:].any()  # padding is left alone
    shares = [hidden_frames[row, : int(frame_mask[row].sum())].float().mean().item() for row in range(4)]
    assert all(0.15 <= share <= 0.35 for share in shares), shares
    runs = torch.diff(hidden_frames[0].int(), prepend=torch.zeros(1, dtype=torch.int)).eq(1).sum().item()
    assert runs <= 0.3 * 200 / ALIGN_MASK_TIME_LENGTH  # spans, not scattered frames
    hidden = mask_frames(frames, frame_mask, mask_time_prob=0.0, mask_feature_prob=0.5) == 0
    hidden_channels = hidden.all(1)
    assert (hidden_channels == hidden.any(1)).all() and 0.3 <= hidden_channels.float().mean().item() <= 0.6


def test_spec_augment_runs_in_training_mode_only(wav_file):
    model, processor = build_tiny_model_and_processor(toy_texts(), num_query_tokens=8)
    batch = processor(audio=[str(wav_file)] * 2, src_lang=["eng"] * 2, task="asr")
    inputs = {"input_features": batch["input_features"], "input_features_mask": batch["input_features_mask"]}
    plain = LLMSRTForAlignment(model, [5, 6, 7])
    augmented = LLMSRTForAlignment(model, [5, 6, 7], mask_time_prob=0.5, mask_feature_prob=0.3)
    plain.eval(), augmented.eval()
    with torch.no_grad():
        assert torch.equal(plain(**inputs)["logits"], augmented(**inputs)["logits"])
        augmented.train()
        model.speech_adapter.eval()  # no dropout: only the masks can differ
        assert not torch.allclose(plain(**inputs)["logits"], augmented(**inputs)["logits"])


def test_proportional_targets_split_the_clip_by_letters():
    head = CTCAlignmentHead(torch.randn(10, 4), [2, 5, 7], character_lengths=[1, 3, 2])
    targets = head.proportional_targets(torch.tensor([[2, 5, -100], [7, 9, -100]]), 4)
    # "a" + "bcd": the first quarter is token 2 (class 1), the rest token 5 (class 2); token 9 is not writable.
    assert targets.tolist() == [[1, 2, 2, 2], [3, 3, 3, -100]]


def test_timed_targets_take_the_token_spoken_at_each_query():
    head = CTCAlignmentHead(torch.randn(10, 4), [2, 5, 7], character_lengths=[1, 3, 2])
    labels = torch.tensor([[2, 5, 7], [2, 5, -100]])
    nan = float("nan")
    times = torch.tensor([[[0.0, 0.3], [0.5, 0.7], [0.9, 1.0]], [[nan, nan], [nan, nan], [nan, nan]]])
    # centres 0.125 / 0.375 / 0.625 / 0.875: inside token 2, nearest to token 2 (a pause), inside token 5,
    # nearest to token 7; the second row has no times and keeps the letter-proportional layout.
    assert head.proportional_targets(labels, 4, times).tolist() == [[1, 1, 2, 3], [1, 2, 2, 2]]
    assert head.proportional_targets(labels, 4).tolist() == [[1, 2, 2, 3], [1, 2, 2, 2]]


def test_the_timed_loss_reads_the_batch_token_times(wav_file):
    model, processor = build_tiny_model_and_processor(toy_texts(), num_query_tokens=4)
    batch = processor(audio=[str(wav_file)], src_lang=["eng"], task="asr")
    inputs = {"input_features": batch["input_features"], "input_features_mask": batch["input_features_mask"],
              "ctc_labels": torch.tensor([[5, 6, 7]]),
              "ctc_token_times": torch.tensor([[[0.0, 0.7], [0.7, 0.8], [0.8, 1.0]]])}
    timed, proportional = LLMSRTForAlignment(model, [5, 6, 7], "timed", [1, 1, 1]), \
        LLMSRTForAlignment(model, [5, 6, 7], "proportional", [1, 1, 1])
    proportional.head.load_state_dict(timed.head.state_dict())
    with torch.no_grad():
        output = timed(**inputs)
        expected = torch.nn.functional.cross_entropy(output["logits"][0], torch.tensor([1, 1, 1, 3]))
        assert output["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
        assert proportional(**inputs)["loss"].item() != pytest.approx(expected.item(), rel=1e-3)


@pytest.mark.slow
def test_proportional_align_loss_falls(tmp_path):
    main([*ALIGN, "--curriculum_stages", "align", "--align_loss", "proportional", "--stage_overrides",
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


def test_adapter_output_starts_at_the_llm_embedding_scale_on_request():
    frames = torch.randn(2, 30, 32)
    norms = {}
    for init in ("ones", "embedding"):
        model, _ = build_tiny_model_and_processor(toy_texts(), adapter_norm_init=init)
        norms[init] = model.speech_adapter(frames).norm(dim=-1).mean().item()
        token_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().item()
    assert norms["ones"] == pytest.approx(model.config.text_config.hidden_size**0.5, rel=0.05)
    assert norms["embedding"] == pytest.approx(token_norm, rel=0.1)
    with pytest.raises(ValueError, match="adapter_norm_init"):
        build_tiny_model_and_processor(toy_texts(), adapter_norm_init="large")


def test_the_align_holdout_leaves_out_whole_transcripts_by_a_fixed_hash():
    texts = [f"sentence number {index}" for index in range(200)]
    rows = datasets.Dataset.from_dict({"transcript": texts + texts[:50], "clip": list(range(250))})
    kept = hold_out_transcripts(rows, 0.5)
    held_out = set(texts) - set(kept["transcript"])
    assert 70 < len(held_out) < 130  # about half of the distinct transcripts
    assert not held_out & set(kept["transcript"])  # every clip of a held-out transcript goes, none of a kept one
    assert kept["transcript"] == [text for text in texts + texts[:50] if transcript_share_point(text) >= 0.5]
    assert hold_out_transcripts(rows, 0.5)["clip"] == kept["clip"]  # the same rows on every call
    assert len(hold_out_transcripts(rows, 0.0)) == 250
    with pytest.raises(ValueError, match="--align_holdout_share is a share"):
        parse_train_args([RECIPE, "--align_holdout_share", "1"])


def test_the_align_stage_trains_on_the_kept_transcripts_and_the_next_stage_on_all(tmp_path):
    main([*ALIGN, "--curriculum_stages", "align", "asr", "--output_dir", str(tmp_path), "--align_holdout_share", "0.5",
          "--stage_overrides", "align.max_steps=1", "asr.max_steps=1", "--save_strategy", "no"])
    texts = toy_texts()
    kept = [text for text in texts if transcript_share_point(text) >= 0.5]
    assert 0 < len(kept) < len(texts)
    align = info(tmp_path / "align")
    assert align["align_holdout_share"] == 0.5 and align["align_training_clips"] == len(kept)
    assert info(tmp_path / "asr")["initial_fingerprint"] == align["final_fingerprint"]


def test_banded_query_self_attention_keeps_each_embedding_local():
    model, _ = build_tiny_model_and_processor(toy_texts(), num_query_tokens=6, query_time_window=0,
                                              query_self_attention_window=1)
    model.eval()
    frames = torch.randn(1, 30, model.config.audio_config.d_model)
    frame_mask = torch.ones(1, 30, dtype=torch.long)
    changed = frames.clone()
    changed[:, 25:] += 1.0  # the last query's slice only
    with torch.no_grad():
        before, after = model.speech_adapter(frames, frame_mask), model.speech_adapter(changed, frame_mask)
        moved = (before - after).abs().amax(-1)[0]
        # Two Q-Former layers: the change reaches the neighbour (self-attention of layer 2), not beyond.
        assert moved[4:].min() > 1e-4 and moved[:4].max() == 0
        model.speech_adapter.query_self_attention_window = None  # the paper's global self-attention
        moved = (model.speech_adapter(frames, frame_mask) - model.speech_adapter(changed, frame_mask)).abs().amax(-1)
        assert moved[0, :4].min() > 1e-6  # small at initialisation (every query starts equal), never 0
    with pytest.raises(ValueError, match="query_self_attention_window"):
        LLMSRTConfig(query_self_attention_window=-1)


def test_the_self_attention_window_flag_builds_a_model_that_keeps_it(tmp_path):
    model_args = parse_train_args([RECIPE, "--query_time_window", "0", "--query_self_attention_window", "1",
                                   "--output_dir", str(tmp_path)])[0]
    model, _ = build_initial_model(model_args, toy_texts())
    model.save_pretrained(tmp_path / "model")
    reloaded = LLMSRTForConditionalGeneration.from_pretrained(tmp_path / "model")
    assert reloaded.config.query_self_attention_window == 1
    frames = torch.randn(2, 30, model.config.audio_config.d_model)
    with torch.no_grad():
        assert torch.equal(model.eval().speech_adapter(frames), reloaded.eval().speech_adapter(frames))
