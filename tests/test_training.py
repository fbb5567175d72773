"""train.py end to end on the tiny recipe: stages, weights handed over, trainable sets, resume after SIGKILL, DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.encoder_cache import fingerprint
from llmsrt.training import main, parse_train_args

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "tiny.yaml")
CHECKPOINT_FILES = {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state.pth"}


def losses(stage_dir: Path) -> list[float]:
    state = json.loads((stage_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def info(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "stage_info.json").read_text())


def test_recipe_and_command_line_overrides():
    model_args, data_args, curriculum, training, stages = parse_train_args(
        [RECIPE, "--learning_rate", "0.5", "--stage", "smt", "--stage_overrides", "srt.learning_rate=2e-4",
         "asr.train=adapter,llm", "--output_dir", "elsewhere"]
    )
    assert model_args.tiny_model and data_args.dataset == "toy" and curriculum.stage == "smt"
    assert training.output_dir == "elsewhere" and training.learning_rate == 0.5
    assert stages["srt"]["learning_rate"] == 2e-4 and stages["srt"]["train"] == ["adapter", "lora"]
    assert stages["asr"]["train"] == ["adapter", "llm"] and stages["smt"]["learning_rate"] == 1e-2
    model_args, *_ = parse_train_args([RECIPE, "--lora_rank", "16", "--lora_target_modules", "q_proj", "k_proj"])
    assert model_args.lora_rank == 16 and model_args.lora_target_modules == ["q_proj", "k_proj"]
    with pytest.raises(ValueError, match="unknown trainable part"):
        parse_train_args([RECIPE, "--stage_overrides", "asr.train=encoder"])
    with pytest.raises(ValueError, match="STAGE.FIELD=VALUE"):
        parse_train_args([RECIPE, "--stage_overrides", "learning_rate=1"])
    with pytest.raises(ValueError, match="--stage must be one of"):
        parse_train_args([RECIPE, "--stage", "mt"])


@pytest.fixture(scope="module")
def curriculum_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("tiny-run")
    finished = main([RECIPE, "--output_dir", str(output), "--disable_tqdm", "true"])
    return output, finished


@pytest.mark.slow
def test_three_stages_produce_loadable_folders(curriculum_run, wav_file):
    output, finished = curriculum_run
    assert list(finished) == ["asr", "smt", "srt"]
    for stage in ("asr", "smt", "srt"):
        folder = output / stage
        for name in ("config.json", "model.safetensors", "processor_config.json", "modeling_llmsrt.py",
                     "trainer_state.json", "loss.png", "stage_info.json"):
            assert (folder / name).is_file(), f"{stage}/{name} missing"
    translator = pipeline("speech-translation", model=str(output / "srt"), trust_remote_code=True)
    result = translator(str(wav_file), src_lang="eng", tgt_lang="deu", generate_kwargs={"max_new_tokens": 4,
                                                                                        "num_beams": 1})
    assert set(result) == {"transcription", "translation", "src_lang", "tgt_lang"}


@pytest.mark.slow
def test_each_stage_starts_from_the_previous_stage_weights(curriculum_run):
    output, _ = curriculum_run
    for previous, stage in (("asr", "smt"), ("smt", "srt")):
        assert info(output / stage)["initial_fingerprint"] == info(output / previous)["final_fingerprint"]
        saved = LLMSRTForConditionalGeneration.from_pretrained(output / previous)
        assert fingerprint(saved) == info(output / previous)["final_fingerprint"]
    assert info(output / "srt")["final_fingerprint"] != info(output / "smt")["final_fingerprint"]


@pytest.mark.slow
def test_trainable_parameters_follow_the_recipe(curriculum_run):
    output, _ = curriculum_run
    for stage in ("asr", "smt"):
        names = info(output / stage)["trainable_parameters"]
        assert names and all(name.startswith("speech_adapter.") for name in names)
    srt = info(output / "srt")["trainable_parameters"]
    lora = [name for name in srt if "lora_" in name]
    adapter = [name for name in srt if ".speech_adapter." in name]
    assert lora and adapter and len(lora) + len(adapter) == len(srt)
    assert all(".language_model." in name and ("q_proj" in name or "v_proj" in name) for name in lora)
    assert not any("audio_encoder" in name for name in srt)


@pytest.mark.slow
def test_loss_falls_on_the_memorisable_toy_set(curriculum_run):
    output, _ = curriculum_run
    srt = losses(output / "srt")
    assert srt[-1] < 0.6 * srt[0], srt
    asr = losses(output / "asr")
    assert asr[-1] < asr[0], asr


def _train(output: Path, *extra: str, wait: bool = True):
    command = [sys.executable, str(ROOT / "train.py"), RECIPE, "--output_dir", str(output), "--stage", "asr",
               "--max_steps", "120", "--save_strategy", "steps", "--save_steps", "5", "--save_total_limit", "3",
               "--logging_steps", "5", "--disable_tqdm", "true", *extra]
    if wait:
        return subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=600)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    _train(tmp_path / "whole")
    killed = tmp_path / "killed"
    process = _train(killed, wait=False)
    checkpoints = killed / "checkpoints" / "asr"
    deadline = time.time() + 300
    while not (checkpoints / "checkpoint-20").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "asr").exists(), "the kill must interrupt the stage"
    complete = [path for path in checkpoints.iterdir() if path.name.startswith("checkpoint-")]
    for checkpoint in complete:  # a visible checkpoint is always whole
        assert CHECKPOINT_FILES <= {path.name for path in checkpoint.iterdir()}, checkpoint
    latest = max(complete, key=lambda path: int(path.name.split("-")[1]))
    # What a kill during a save leaves behind sits under .staging, where resuming never looks.
    partial = checkpoints / ".staging" / "checkpoint-999"
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "trainer_state.json").write_text("{")
    _train(killed, "--resume_from_checkpoint", "true")
    resumed, whole = info(killed / "asr"), info(tmp_path / "whole" / "asr")
    assert resumed["resumed_from"] == str(latest)
    assert resumed["global_step"] == whole["global_step"] == 120
    assert resumed["final_fingerprint"] == whole["final_fingerprint"]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    common = [RECIPE, "--stage", "asr", "--max_steps", "6", "--logging_steps", "1", "--save_strategy", "no",
              "--train_sampling_strategy", "sequential", "--disable_tqdm", "true"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run([sys.executable, str(ROOT / "train.py"), *common, "--output_dir", str(single),
                    "--per_device_train_batch_size", "8"], check=True, capture_output=True, cwd=ROOT, timeout=600)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(ROOT / "train.py"),
                    *common, "--output_dir", str(ddp), "--per_device_train_batch_size", "4", "--ddp_backend", "gloo"],
                   check=True, capture_output=True, cwd=ROOT, timeout=600)
    assert losses(ddp / "asr") == pytest.approx(losses(single / "asr"), rel=1e-4)
    assert len(losses(single / "asr")) == 6


def test_paper_recipe_and_accelerate_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    from llmsrt.data.stage_data import _directions

    paper = str(ROOT / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml")
    model_args, data_args, _, training, stages = parse_train_args([paper, "--bf16", "false"])  # no GPU here
    assert (model_args.whisper, model_args.llm) == ("openai/whisper-large-v3", "Qwen/Qwen2.5-3B")
    assert len(_directions(data_args)) == 210 and training.weight_decay == 0.01
    assert [stages[s]["learning_rate"] for s in ("asr", "smt", "srt")] == [1e-4, 1e-5, 1e-4]
    assert stages["srt"]["train"] == ["adapter", "lora"] and stages["asr"]["train"] == ["adapter"]
    configs = {name: load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
               for name in ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")}
    kinds = [str(config.distributed_type).split(".")[-1] for config in configs.values()]
    assert kinds == ["MULTI_GPU", "FSDP", "DEEPSPEED", "DEEPSPEED"]
    # DeepSpeed does not run here: its two configs are parsed only (docs/training.md)
    assert [configs[f"deepspeed-zero{stage}"].deepspeed_config["zero_stage"] for stage in (2, 3)] == [2, 3]
    assert configs["deepspeed-zero3"].deepspeed_config["zero3_save_16bit_model"]


def test_mcat_recipe_parses_into_the_v2_setup():
    """recipes/mcat-gemma3-27b-fleurs70.yaml: MCAT's adapter, LoRA, prompt and tags, and FLEURS' 4,830 directions."""
    from llmsrt.data.stage_data import _directions
    from llmsrt.languages import MCAT_AUTHOR_CODES, MCAT_CODES, MCAT_LANGUAGES

    recipe = str(ROOT / "recipes" / "mcat-gemma3-27b-fleurs70.yaml")
    model_args, data_args, _, training, stages = parse_train_args([recipe, "--bf16", "false"])  # no GPU here
    assert (model_args.whisper, model_args.llm) == ("openai/whisper-large-v3", "google/gemma-3-27b-it")
    assert (model_args.num_query_tokens, model_args.query_pooling_stride, model_args.qformer_num_layers) == (150, 5, 8)
    assert (model_args.query_pooling_stride, model_args.adapter_hidden_size) == (5, 2560)
    assert model_args.qformer_attends_padding
    assert (model_args.lora_rank, model_args.lora_alpha, model_args.lora_dropout) == (16, 32, 0.05)
    assert model_args.lora_target_modules == ["q_proj", "v_proj"] and model_args.language_tags == MCAT_CODES
    assert data_args.dataset == "fleurs" and data_args.languages == list(MCAT_AUTHOR_CODES)
    directions = _directions(data_args)
    assert len(directions) == 4830 and {code for pair in directions for code in pair} == set(MCAT_LANGUAGES)
    assert training.weight_decay == 0.01 and training.num_train_epochs == 3
    assert [stages[s]["learning_rate"] for s in ("asr", "smt", "srt")] == [1e-4, 1e-5, 1e-4]
    assert stages["srt"]["train"] == ["adapter", "lora"]
    english_centric = parse_train_args([recipe, "--bf16", "false", "--centre_languages", "eng"])[1]
    assert len(_directions(english_centric)) == 138
    with pytest.raises(ValueError, match="--language_tags takes a JSON object"):
        parse_train_args([recipe, "--bf16", "false", "--language_tags", "zho=cmn"])


def test_a_trained_folder_records_its_languages(tmp_path):
    """The toy set's three languages, and no other: the folder's processor refuses a fourth with the list; a new
    model's tags come from --language_tags."""
    from helpers import make_clip

    from llmsrt import LLMSRTProcessor

    main([RECIPE, "--stage", "asr", "--max_steps", "1", "--save_strategy", "no", "--output_dir", str(tmp_path),
          "--disable_tqdm", "true", "--language_tags", '{"deu": "ger"}'])
    saved = json.loads((tmp_path / "asr" / "processor_config.json").read_text())
    assert saved["languages"] == ["eng", "deu", "fra"] and saved["language_tags"] == {"deu": "ger"}
    processor = LLMSRTProcessor.from_pretrained(tmp_path / "asr")
    with pytest.raises(ValueError, match=r"'spa' \(Spanish\)\. Its 3 languages: eng, deu, fra"):
        processor(audio=make_clip(0.5, 1), src_lang="spa", task="asr")


def test_encoder_cache_keeps_the_loss_trajectory(tmp_path):
    common = [RECIPE, "--stage", "asr", "--num_train_epochs", "3", "--logging_steps", "1", "--save_strategy", "no",
              "--disable_tqdm", "true"]
    main([*common, "--output_dir", str(tmp_path / "plain")])
    main([*common, "--output_dir", str(tmp_path / "cached"), "--encoder_cache_dir", str(tmp_path / "cache")])
    assert losses(tmp_path / "cached" / "asr") == pytest.approx(losses(tmp_path / "plain" / "asr"), rel=1e-4)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 24  # one entry per toy clip


def test_recipe_lora_settings_reach_the_model(tmp_path):
    main([RECIPE, "--stage", "asr", "--max_steps", "1", "--save_strategy", "no", "--lora_rank", "4",
          "--lora_target_modules", "q_proj", "k_proj", "--output_dir", str(tmp_path / "a"), "--disable_tqdm", "true"])
    main([RECIPE, "--stage", "smt", "--max_steps", "1", "--save_strategy", "no", "--output_dir", str(tmp_path / "a"),
          "--stage_overrides", "smt.train=adapter,lora", "--disable_tqdm", "true"])
    config = json.loads((tmp_path / "a" / "smt" / "config.json").read_text())
    assert config["lora_rank"] == 4 and config["lora_target_modules"] == ["q_proj", "k_proj"]
    lora = [name for name in info(tmp_path / "a" / "smt")["trainable_parameters"] if "lora_" in name]
    assert lora and all("q_proj" in name or "k_proj" in name for name in lora)


def test_manifest_training_with_evaluation_loss(tmp_path):
    from llmsrt.data.toy import build_toy_corpus

    manifest = build_toy_corpus(tmp_path / "data")
    main([RECIPE, "--dataset", "manifest", "--train_manifest", str(manifest), "--eval_manifest", str(manifest),
          "--stage", "asr", "--max_steps", "4", "--eval_strategy", "steps", "--eval_steps", "2",
          "--save_strategy", "no", "--output_dir", str(tmp_path / "run"), "--disable_tqdm", "true"])
    state = json.loads((tmp_path / "run" / "asr" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [2, 4]
    assert (tmp_path / "run" / "asr" / "loss.png").is_file()


def test_an_unknown_dataset_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match="'librispeech': use manifest, fleurs, covost2, common_voice, toy"):
        parse_train_args([RECIPE, "--dataset", "librispeech"])


def test_trainer_loss_projects_answer_positions_only(lively):
    """`LLMSRTTrainer.compute_loss` skips the output layer on audio and prompt positions: same loss, fewer logits."""
    from helpers import SAMPLING_RATE, make_clip
    from transformers import TrainingArguments

    from llmsrt.training.trainer import LLMSRTTrainer

    model, processor = lively
    batch = processor(audio=[make_clip(1.0, 0), make_clip(2.0, 1)], sampling_rate=SAMPLING_RATE,
                      src_lang="eng", tgt_lang=["deu", "fra"], task="srt",
                      targets=[{"transcription": "a b", "translation": "c"},
                               {"transcription": "d", "translation": "e f g"}]).data
    trainer = LLMSRTTrainer(model=model, args=TrainingArguments("unused", report_to="none", use_cpu=True))
    with torch.no_grad():
        expected = model(**batch)
        loss, output = trainer.compute_loss(model, batch, return_outputs=True)
    torch.testing.assert_close(loss, expected.loss, rtol=1e-5, atol=1e-6)
    prompt = int((batch["labels"] != -100).any(0).nonzero()[0])
    assert output.logits.shape[1] == batch["labels"].shape[1] - prompt + 1 < expected.logits.shape[1]


def test_a_resumed_one_stage_curriculum_keeps_its_finished_stage(tmp_path):
    """The SRT-only baseline is a curriculum of one stage: run again with resume, its finished stage is kept."""
    command = [RECIPE, "--output_dir", str(tmp_path), "--curriculum_stages", "srt", "--stage_overrides",
               "srt.max_steps=2", "--save_strategy", "steps", "--save_steps", "1", "--disable_tqdm", "true"]
    main(command)
    stage_info = tmp_path / "srt" / "stage_info.json"
    written = (stage_info.read_bytes(), stage_info.stat().st_mtime_ns)
    finished = main([*command, "--resume_from_checkpoint", "true"])
    assert finished == {"srt": tmp_path / "srt"}
    assert (stage_info.read_bytes(), stage_info.stat().st_mtime_ns) == written


@pytest.mark.slow
def test_the_tiny_curriculum_trains_a_pooled_adapter_on_a_gemma3_text_model(tmp_path, wav_file):
    """MCAT's shape on the tiny recipe: Gemma-3's text model (BOS after the audio), 16 queries pooled by 2."""
    finished = main([RECIPE, "--output_dir", str(tmp_path), "--disable_tqdm", "true", "--tiny_text_model",
                     "gemma3_text", "--num_query_tokens", "16", "--query_pooling_stride", "2"])
    assert list(finished) == ["asr", "smt", "srt"]
    srt = losses(tmp_path / "srt")
    assert srt[-1] < 0.6 * srt[0], srt
    model = LLMSRTForConditionalGeneration.from_pretrained(tmp_path / "srt")
    assert type(model.language_model).__name__ == "Gemma3ForCausalLM"
    assert (model.config.num_query_tokens, model.config.num_audio_embeddings) == (16, 8)
    processor = json.loads((tmp_path / "srt" / "processor_config.json").read_text())
    assert processor["prompt_layout"] == ["audio", "bos", "instruction"] and processor["num_query_tokens"] == 8
    lora = [name for name in info(tmp_path / "srt")["trainable_parameters"] if "lora_" in name]
    assert lora and all(".language_model." in name for name in lora)
    translator = pipeline("speech-translation", model=str(tmp_path / "srt"), trust_remote_code=True)
    result = translator(str(wav_file), src_lang="eng", tgt_lang="deu", generate_kwargs={"max_new_tokens": 4,
                                                                                        "num_beams": 1})
    assert set(result) == {"transcription", "translation", "src_lang", "tgt_lang"}
