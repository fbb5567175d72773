"""`recipes/demo.yaml` end to end on tiny parts: a tiny Whisper converted from a CTranslate2 file the test writes
and a tiny chat LLM stand in for Whisper-base and Qwen2.5-0.5B; everything else (corpus, curriculum, SRT-only
baseline, eval.py's evaluation, cascade, report) is the demo's own code."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_tiny_whisper, write_checkpoint
from transformers import Qwen2Config, Qwen2ForCausalLM

from llmsrt.conversion.convert_ctranslate2_whisper_to_hf import convert_ctranslate2_whisper
from llmsrt.demo.corpus import read_sentences
from llmsrt.demo.machine_fit import MIN_STEP_SCALE
from llmsrt.demo.run import Timings, main, read_recipe, srt_only_overrides
from llmsrt.testing import build_tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_chat_llm(folder: Path) -> Path:
    texts = [row[code] for row in read_sentences()[:100] for code in ("eng", "deu")]
    tokenizer = build_tiny_tokenizer(texts)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    whisper = convert_ctranslate2_whisper(write_checkpoint(root / "ct2", make_tiny_whisper(), np.float16),
                                          root / "whisper")
    del whisper
    recipe, _ = read_recipe(ROOT / "recipes" / "demo.yaml")
    recipe.update(whisper=str(root / "whisper"), llm=str(tiny_chat_llm(root / "llm")), languages=["eng", "deu"],
                  encoder_cache_dir=str(root / "encoder-cache"), per_device_train_batch_size=2, logging_steps=1)
    for name, stage in recipe["stages"].items():
        stage.update(max_steps=4 if name == "align" else 2, per_device_train_batch_size=2)
    # A reference machine far faster than this one: the fit trains the least share of the steps it allows (half).
    reference = {"machine": "a machine 1,000x faster", "probe_seconds": 0.01, "training_seconds": 100,
                 "evaluation_seconds": 1}
    recipe["demo"] = {"test_clips_per_direction": 2, "eval_batch_size": 4, "max_new_tokens": 6,
                      "corpus_dir": str(root / "corpus"), "dev_clips": 3, "speed_reference": reference}
    (root / "demo.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    main([str(root / "demo.yaml"), "--output_dir", str(root / "run"), "--started_at", "0"])
    return root / "run"


@pytest.mark.slow
def test_demo_report_compares_three_systems_on_the_same_directions(demo_run):
    summary = json.loads((demo_run / "report" / "summary.json").read_text())
    assert set(summary["systems"]) == {"curriculum", "srt-only", "cascade"}
    assert set(summary["bleu_per_direction"]) == {"eng-deu", "deu-eng"}
    for system, row in summary["systems"].items():
        assert 0.0 <= row["average_bleu"] <= 100.0 and row["test_clips"] == 4
        predictions = (demo_run / "report" / system / "predictions.jsonl").read_text().splitlines()
        assert len(predictions) == 4 and (demo_run / "report" / system / "bleu_heatmap.png").is_file()
    # The SRT-only baseline starts from the same aligned adapter as the curriculum's ASR stage and spends the
    # budget of the three paper stages (same examples) on the SRT stage alone.
    curriculum, baseline = summary["systems"]["curriculum"]["training"], summary["systems"]["srt-only"]["training"]
    assert list(curriculum["stages"]) == ["align", "asr", "smt", "srt"] and list(baseline["stages"]) == ["align", "srt"]
    # Fitted to this machine: half the recipe's steps in every stage (align 4 -> 2, the others 2 -> 1).
    fit = summary["machine_fit"]
    assert fit["step_scale"] == MIN_STEP_SCALE and fit["speed_factor"] > 100
    assert fit["steps"] == {"align": {"recipe": 4, "fitted": 2}, **{stage: {"recipe": 2, "fitted": 1}
                                                                     for stage in ("asr", "smt", "srt")}}
    assert [curriculum["stages"][stage]["steps"] for stage in curriculum["stages"]] == [2, 1, 1, 1]
    assert baseline["stages"]["srt"]["steps"] == 3  # the fitted ASR + SMT + SRT steps
    assert curriculum["examples"] == baseline["examples"] == 2 * 2 + 3 * 2
    assert curriculum["stages"]["align"] == baseline["stages"]["align"]
    srt_only_info = json.loads((demo_run / "srt-only" / "srt" / "stage_info.json").read_text())
    align_info = json.loads((demo_run / "curriculum" / "align" / "stage_info.json").read_text())
    # Training read the corpus the demo built, handed over as an ordinary manifest.
    corpus_rows = (demo_run.parent / "corpus" / "train.jsonl").read_text().splitlines()
    asr_info = json.loads((demo_run / "curriculum" / "asr" / "stage_info.json").read_text())
    assert asr_info["data"]["examples"] == srt_only_info["data"]["examples"] == len(corpus_rows)
    assert srt_only_info["initial_fingerprint"] == align_info["final_fingerprint"]
    assert not (demo_run / "srt-only" / "asr").exists() and not (demo_run / "srt-only" / "align").exists()
    # The demo's stage folders hold only what the stages changed (the fingerprints above: they load exactly).
    for stage in ("align", "srt"):
        assert json.loads((demo_run / "curriculum" / stage / "config.json").read_text())["stored_weights"] == "changed"
    for system in ("curriculum", "srt-only"):
        assert isinstance(summary["systems"][system]["audio_gain"], float)
    assert summary["systems"]["cascade"]["audio_gain"] is None
    assert [point["stage"] for point in summary["learning_curve"]] == ["align", "asr", "smt", "srt"]
    assert [point["examples_seen"] for point in summary["learning_curve"]] == [4, 6, 8, 10]
    assert (demo_run / "report" / "learning_curve.png").is_file()
    timed = set(summary["timings_seconds"])
    assert {"setup (make)", "models", "corpus", "speed probe", "evaluate: cascade", "evaluate: curriculum"} <= timed
    assert not (demo_run / "speed-probe").exists()  # the probe's folders are removed, its time kept
    readme = (demo_run / "report" / "README.md").read_text()
    assert "## Fitted to this machine" in readme and "| align | 4 | 2 |" in readme and "projection check" in readme
    assert "## Verdict" in readme and "Curriculum vs cascade" in readme and "Curriculum audio gain" in readme
    assert "(target at least +20%)" in readme and summary["audio_gain_target"] == 0.2
    assert "Curriculum vs cascade's Whisper, average WER/CER" in readme
    for name in ("loss-curriculum-asr.png", "loss-curriculum-srt.png", "loss-srt-only-srt.png"):
        assert (demo_run / "report" / name).is_file() and f"]({name})" in readme


@pytest.mark.slow
def test_cascade_transcribes_then_translates_with_the_chat_prompt(demo_run):
    rows = [json.loads(line) for line in (demo_run / "report" / "cascade" / "predictions.jsonl").read_text()
            .splitlines()]
    assert {row["direction"] for row in rows} == {"eng-deu", "deu-eng"}
    results = json.loads((demo_run / "report" / "cascade" / "results.json").read_text())
    assert results["model"].startswith("cascade:") and results["examples"] == 4


def test_srt_only_budget_matches_the_curriculum():
    settings = {"align": {"max_steps": 50}, "asr": {"max_steps": 5}, "smt": {"max_steps": 2}, "srt": {"max_steps": 3}}
    paper = ["asr", "smt", "srt"]
    assert srt_only_overrides(settings, paper, Path("c")) == ["--curriculum_stages", "srt", "--stage_overrides",
                                                              "srt.max_steps=10"]
    assert srt_only_overrides(settings, ["align", *paper], Path("c")) == [
        "--model_name_or_path", str(Path("c") / "align"), "--curriculum_stages", "srt", "--stage_overrides",
        "srt.max_steps=10"]
    with pytest.raises(ValueError, match="no max_steps to"):
        srt_only_overrides({"align": {}, "asr": {}, "smt": {}, "srt": {"max_steps": 3}}, paper, Path("c"))


def test_unknown_demo_setting_is_named(tmp_path):
    (tmp_path / "r.yaml").write_text("demo: {test_clips: 3}\n")
    with pytest.raises(ValueError, match="test_clips"):
        read_recipe(tmp_path / "r.yaml")


def test_the_demo_recipe_names_no_data_source(tmp_path):
    """The demo trains on the corpus it builds: a recipe that names another source (or an old `dataset: demo`) is
    told so."""
    (tmp_path / "r.yaml").write_text("dataset: demo\ndemo: {corpus_dir: c}\n")
    with pytest.raises(ValueError, match=r"remove \['dataset'\]"):
        read_recipe(tmp_path / "r.yaml")


def test_offline_mirrors_only_stand_in_for_the_demo_models(tmp_path):
    from llmsrt.demo.offline_models import LLM_HUB, WHISPER_HUB, resolve_demo_parts

    with pytest.raises(ValueError, match="openai/whisper-base.*not for openai/whisper-large-v3"):
        resolve_demo_parts("openai/whisper-large-v3", "Qwen/Qwen2.5-3B", tmp_path / "cache")
    parts = resolve_demo_parts(WHISPER_HUB, LLM_HUB, None)  # no mirror cache: the parts as given
    assert (parts.whisper, parts.llm) == (WHISPER_HUB, LLM_HUB)
    (tmp_path / "w").mkdir(), (tmp_path / "l").mkdir()
    parts = resolve_demo_parts(str(tmp_path / "w"), str(tmp_path / "l"), tmp_path / "cache")  # local folders
    assert (parts.whisper, parts.llm) == (str(tmp_path / "w"), str(tmp_path / "l"))
    assert not (tmp_path / "cache").exists()


def test_mirror_downloads_are_pruned_only_once_both_parts_are_assembled(tmp_path):
    from llmsrt.demo.offline_models import prune_downloads

    for folder, name in [("wheels", "part1.whl"), ("qwen2.5-0.5b-gguf", "model.gguf"),
                         ("whisper-base-ct2", "model.bin"), ("whisper-base", "config.json")]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(b"x" * 1000)
    assert prune_downloads(tmp_path) == 0  # the Qwen folder is not assembled yet: its sources must stay
    assert (tmp_path / "wheels" / "part1.whl").is_file() and (tmp_path / "qwen2.5-0.5b-gguf").is_dir()
    (tmp_path / "qwen2.5-0.5b-instruct").mkdir()
    (tmp_path / "qwen2.5-0.5b-instruct" / "config.json").write_text("{}")
    assert prune_downloads(tmp_path) == 2000
    assert not (tmp_path / "wheels").exists() and not (tmp_path / "qwen2.5-0.5b-gguf").exists()
    assert (tmp_path / "whisper-base-ct2" / "model.bin").is_file()  # read by the CPU cascade benchmark



def test_cascade_prompt_names_the_languages_and_keeps_the_first_line(tmp_path):
    from llmsrt.evaluation.cascade import CascadeTranslator, first_line

    whisper = tmp_path / "whisper"
    convert_ctranslate2_whisper(write_checkpoint(tmp_path / "ct2", make_tiny_whisper(), np.float16), whisper)
    cascade = CascadeTranslator(str(whisper), str(tiny_chat_llm(tmp_path / "llm")))
    prompt = cascade.prompt("Guten Morgen.", "deu", "zho")
    assert "Translate the following German text into Chinese (Mandarin)" in prompt and "Guten Morgen." in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert first_line("\n Bonjour.\n\nThis translation keeps the tone.") == "Bonjour."
    with pytest.raises(ValueError, match="no language code for 'ast'"):
        cascade.transcribe([np.zeros(16000, dtype=np.float32)], ["ast"])  # Asturian: no Whisper language


def test_long_demo_recipe_resumes_and_trains_more():
    from llmsrt.training import parse_train_args

    *_, training, stages = parse_train_args([str(ROOT / "recipes" / "demo-long.yaml")])
    *_, short = parse_train_args([str(ROOT / "recipes" / "demo.yaml")])
    assert training.save_strategy == "steps"  # checkpoints to resume from
    for stage in ("align", "asr", "smt", "srt"):
        assert stages[stage]["max_steps"] > short[stage]["max_steps"]


def test_timings_of_a_resumed_run_add_to_the_interrupted_ones(tmp_path):
    first = Timings(tmp_path / "timings.json")
    first.add("train", 100.0)
    first.add("setup (make)", 5.0)
    resumed = Timings(tmp_path / "timings.json", resume=True)
    resumed.add("train", 30.0)
    resumed.add("evaluate", 7.0)
    assert resumed.seconds == {"train": 130.0, "setup (make)": 5.0, "evaluate": 7.0}
    assert json.loads((tmp_path / "timings.json").read_text()) == resumed.seconds
    assert Timings(tmp_path / "timings.json").seconds == {}  # a run that does not resume starts the count afresh
