"""Sharded training (FSDP2) on two CPU processes with gloo, through the shipped accelerate config and through the
Trainer's own --fsdp options: the loss trajectory of one process at the same global batch, stage folders that load
to the same logits, resume after a kill. And a run that asked for sharding and did not get it fails saying so."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SAMPLING_RATE, build_from_saved_parts, make_clip, save_model
from safetensors import safe_open
from transformers import WhisperFeatureExtractor

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data.toy import toy_texts
from llmsrt.testing import build_tiny_model_and_processor, build_tiny_tokenizer
from llmsrt.training import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "tiny.yaml")
FSDP_ACCELERATE_CONFIG = ROOT / "configs" / "accelerate" / "fsdp.yaml"
FSDP_TRAINER_CONFIG = ROOT / "configs" / "trainer-fsdp.json"
# One process with batch 8 and two with batch 4 each see the same samples per step (sequential sampling; no LoRA
# dropout, whose masks depend on how a batch is split over processes); sharded, the gradients are reduce-scattered
# instead of summed in one process, a different order of float additions, which Adam's first steps amplify on weights
# whose gradient is near 0 (measured: losses within 4.8e-6 relative, logits within 3.4e-3 of 9.3 after the
# curriculum's 12 steps).
LOSS_RTOL = 1e-4
LOGITS_ATOL = 1e-2
SHARDED = "Sharding in effect: fsdp over 2 process(es)"


def losses(stage_dir: Path) -> list[float]:
    state = json.loads((stage_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def cpu_variant(config: Path, folder: Path) -> Path:
    """The shipped accelerate config with what a CPU requires changed: no bf16 mixed precision (CUDA's)."""
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["mixed_precision"] = "no"
    variant = folder / config.name
    variant.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return variant


def run(command: list[str], **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, **popen)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def accelerate_fsdp(config: Path, *train_args: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "2",
            str(ROOT / "train.py"), *train_args, "--per_device_train_batch_size", "4"]


def torchrun_fsdp(*train_args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(ROOT / "train.py"),
            *train_args, "--per_device_train_batch_size", "4", "--ddp_backend", "gloo",
            "--fsdp", "full_shard auto_wrap", "--fsdp_config", str(FSDP_TRAINER_CONFIG)]


def logits(folder: Path) -> torch.Tensor:
    model = LLMSRTForConditionalGeneration.from_pretrained(folder)
    processor = LLMSRTProcessor.from_pretrained(folder)
    batch = processor(audio=make_clip(1.5, 2), sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu",
                      task="srt", targets={"transcription": "the train", "translation": "der zug"})
    with torch.no_grad():
        return model(**batch).logits


def stored_names(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        return set(weights.keys())


@pytest.fixture(scope="module")
def start_folder(tmp_path_factory):
    """A tiny model built from saved Whisper and LLM parts (so that stage folders can store changes only)."""
    folder = tmp_path_factory.mktemp("start")
    tiny_model, processor = build_tiny_model_and_processor(toy_texts())
    model = build_from_saved_parts(tiny_model, processor, folder / "parts")
    return save_model(folder / "model", model, processor)


@pytest.mark.slow
def test_the_whole_curriculum_under_fsdp_through_the_shipped_accelerate_config(start_folder, tmp_path):
    """align -> asr -> smt -> srt (frozen encoder; frozen LLM, then LoRA; trainable adapter), with the encoder cache,
    the language-ID head and changes-only stage folders: two FSDP2 processes follow one process."""
    stages = ("align", "asr", "smt", "srt")
    common = [RECIPE, "--model_name_or_path", str(start_folder), "--curriculum_stages", *stages,
              "--stage_overrides", *(f"{stage}.max_steps=3" for stage in stages), "--logging_steps", "1",
              "--save_strategy", "no", "--train_sampling_strategy", "sequential", "--language_id_head", "true",
              "--stage_folders", "changed", "--lora_dropout", "0", "--disable_tqdm", "true"]
    single, sharded = tmp_path / "single", tmp_path / "fsdp"
    main([*common, "--output_dir", str(single), "--per_device_train_batch_size", "8",
          "--encoder_cache_dir", str(tmp_path / "cache-single")])
    launched = run(accelerate_fsdp(cpu_variant(FSDP_ACCELERATE_CONFIG, tmp_path), *common, "--output_dir",
                                   str(sharded), "--encoder_cache_dir", str(tmp_path / "cache-fsdp")))
    assert SHARDED in launched.stderr
    for stage in stages:
        expected = losses(single / stage)
        assert len(expected) == 3 and losses(sharded / stage) == pytest.approx(expected, rel=LOSS_RTOL), stage
        info = json.loads((sharded / stage / "stage_info.json").read_text())
        assert info["global_step"] == 3
        assert not any(name.startswith("audio_encoder.") for name in stored_names(sharded / stage)), stage
        torch.testing.assert_close(logits(sharded / stage), logits(single / stage), rtol=0, atol=LOGITS_ATOL)
    first = json.loads((sharded / "align" / "stage_info.json").read_text())["language_id"]
    assert first == json.loads((single / "align" / "stage_info.json").read_text())["language_id"]
    assert LLMSRTForConditionalGeneration.from_pretrained(sharded / "srt").language_id_head is not None
    assert list((tmp_path / "cache-fsdp").rglob("*.safetensors")), "the encoder cache was not used"


@pytest.fixture(scope="module")
def gemma_start_folder(tmp_path_factory):
    """A tiny LLM-SRT whose LLM is a Gemma-3 text side (Gemma3ForCausalLM)."""
    tokenizer = build_tiny_tokenizer(toy_texts())
    processor = LLMSRTProcessor(WhisperFeatureExtractor(feature_size=80, chunk_length=5), tokenizer,
                                num_query_tokens=8)
    config = LLMSRTConfig(
        audio_config={"num_mel_bins": 80, "d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4,
                      "encoder_ffn_dim": 128, "decoder_layers": 1, "max_source_positions": 250},
        qformer_config={"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                        "encoder_hidden_size": 64, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        text_config={"model_type": "gemma3_text", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128,
                     "vocab_size": len(tokenizer)},
        audio_token_id=processor.audio_token_id, num_query_tokens=8, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return save_model(tmp_path_factory.mktemp("gemma") / "model", LLMSRTForConditionalGeneration(config), processor)


@pytest.mark.slow
def test_fsdp_on_a_gemma3_text_side_matches_one_process(gemma_start_folder, tmp_path):
    """The same shipped config shards a Gemma-3 text side (its Gemma3DecoderLayer units): ASR, then SRT with LoRA."""
    common = [RECIPE, "--model_name_or_path", str(gemma_start_folder), "--curriculum_stages", "asr", "srt",
              "--stage_overrides", "asr.max_steps=3", "srt.max_steps=3", "--logging_steps", "1", "--save_strategy",
              "no", "--train_sampling_strategy", "sequential", "--lora_dropout", "0", "--disable_tqdm", "true"]
    single, sharded = tmp_path / "single", tmp_path / "fsdp"
    main([*common, "--output_dir", str(single), "--per_device_train_batch_size", "8"])
    launched = run(accelerate_fsdp(cpu_variant(FSDP_ACCELERATE_CONFIG, tmp_path), *common, "--output_dir",
                                   str(sharded)))
    assert SHARDED in launched.stderr
    for stage in ("asr", "srt"):
        assert losses(sharded / stage) == pytest.approx(losses(single / stage), rel=LOSS_RTOL), stage
        torch.testing.assert_close(logits(sharded / stage), logits(single / stage), rtol=0, atol=LOGITS_ATOL)
    model = LLMSRTForConditionalGeneration.from_pretrained(sharded / "srt")
    assert type(model.language_model.model.layers[0]).__name__ == "Gemma3DecoderLayer"


@pytest.mark.slow
def test_fsdp_through_the_trainer_options_resumes_after_a_kill(tmp_path):
    """torchrun + --fsdp/--fsdp_config: killed after a checkpoint and resumed, the run continues the trajectory of
    an uninterrupted single process."""
    common = [RECIPE, "--stage", "srt", "--curriculum_stages", "srt", "--max_steps", "9", "--logging_steps", "1",
              "--train_sampling_strategy", "sequential", "--save_strategy", "steps", "--save_steps", "3",
              "--lora_dropout", "0", "--disable_tqdm", "true"]
    main([*common, "--output_dir", str(tmp_path / "single"), "--per_device_train_batch_size", "8"])
    killed = tmp_path / "killed"
    process = run(torchrun_fsdp(*common, "--output_dir", str(killed)), start_new_session=True,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed / "checkpoints" / "srt"
    deadline = time.time() + 600
    try:
        while not (checkpoints / "checkpoint-3").exists():
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.005)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and both training processes
        process.wait()
    assert not (killed / "srt").exists(), "the kill must interrupt the stage"
    resumed = run(torchrun_fsdp(*common, "--output_dir", str(killed), "--resume_from_checkpoint", "true"))
    assert SHARDED in resumed.stderr
    info = json.loads((killed / "srt" / "stage_info.json").read_text())
    assert info["resumed_from"].startswith(str(checkpoints / "checkpoint-")) and info["global_step"] == 9
    assert losses(killed / "srt") == pytest.approx(losses(tmp_path / "single" / "srt"), rel=LOSS_RTOL)
    torch.testing.assert_close(logits(killed / "srt"), logits(tmp_path / "single" / "srt"), rtol=0,
                               atol=LOGITS_ATOL)


def test_a_run_that_asked_for_fsdp_and_was_not_sharded_fails_saying_so(tmp_path, monkeypatch):
    """The FSDP environment accelerate's launcher sets, in a process that is not distributed: no silent DDP or
    single-process fallback."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    with pytest.raises(RuntimeError, match=r"asked for fsdp sharding, but .* no weight is sharded"):
        main([RECIPE, "--stage", "asr", "--max_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true",
              "--output_dir", str(tmp_path)])


def test_the_trainer_fsdp_config_wraps_what_the_accelerate_config_wraps():
    """configs/trainer-fsdp.json (--fsdp_config) and configs/accelerate/fsdp.yaml shard alike."""
    accelerate = yaml.safe_load(FSDP_ACCELERATE_CONFIG.read_text(encoding="utf-8"))["fsdp_config"]
    trainer = json.loads(FSDP_TRAINER_CONFIG.read_text(encoding="utf-8"))
    assert trainer["fsdp_transformer_layer_cls_to_wrap"] == ["Qwen2DecoderLayer", "Gemma3DecoderLayer"]
    assert "fsdp_use_orig_params" not in accelerate  # FSDP1 only
    assert accelerate["fsdp_version"] == trainer["fsdp_version"] == 2
    assert accelerate["fsdp_transformer_layer_cls_to_wrap"].split(",") == trainer["fsdp_transformer_layer_cls_to_wrap"]
    for key in ("fsdp_auto_wrap_policy", "fsdp_state_dict_type", "fsdp_reshard_after_forward",
                "fsdp_cpu_ram_efficient_loading"):
        assert accelerate[key] == trainer[key], key
