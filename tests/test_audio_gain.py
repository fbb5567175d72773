"""Audio gain (loss with another clip's audio / loss with its own - 1): large for a model that reads the audio, about
0 for one that cannot; written by eval.py (results.json, matrix.md) and by training (stage_info.json)."""

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from llmsrt.data import CurriculumCollator
from llmsrt.data import write_manifest as write_jsonl_manifest
from llmsrt.data.schema import SAMPLING_RATE
from llmsrt.data.toy import build_toy_corpus, tone_speech, toy_texts
from llmsrt.diagnostics.audio_gain import answer_losses, audio_gain, audio_gain_on_examples, example_chunks, swap_audio
from llmsrt.testing import build_tiny_model_and_processor

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "tiny.yaml")
# Two clips per direction with the same prompt (language tags): only the audio tells the two answers apart.
PAIRS = [
    ("eng", "good morning", "deu", "guten morgen"),
    ("eng", "thank you", "deu", "danke schön"),
    ("deu", "ich mag tee", "eng", "i like tea"),
    ("deu", "bis morgen", "eng", "see you tomorrow"),
]


def pair_examples() -> list[dict]:
    return [
        {
            "id": str(i),
            "audio": {"array": tone_speech(text, src), "sampling_rate": SAMPLING_RATE},
            "src_lang": src,
            "transcript": text,
            "tgt_lang": tgt,
            "translation": translation,
        }
        for i, (src, text, tgt, translation) in enumerate(PAIRS)
    ]


def fresh_model(seed: int = 0):
    return build_tiny_model_and_processor(toy_texts(), chunk_seconds=1, seed=seed)  # 1-s window: fast steps


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    """A tiny model (adapter + LLM) trained until it memorises the four pairs: about 5 s on 2 CPU cores."""
    model, processor = fresh_model()
    collator = CurriculumCollator(processor, task="srt")
    batch = collator(pair_examples())
    model.freeze_audio_encoder()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(100):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), processor


def test_answer_losses_give_the_models_own_loss():
    model, processor = fresh_model()
    batch = CurriculumCollator(processor, task="srt")(pair_examples())
    sums, counts = answer_losses(model, batch)
    assert counts.tolist() == (batch["labels"] != -100).sum(dim=1).tolist()
    with torch.no_grad():
        expected = model.eval()(**batch).loss
    assert float(sums.sum() / counts.sum()) == pytest.approx(float(expected), rel=1e-5)


def test_batches_never_hold_a_single_clip():
    def sizes(n, b):
        return [len(chunk) for chunk in example_chunks(range(n), b)]

    assert sizes(7, 3) == [3, 4] and sizes(6, 3) == [3, 3] and sizes(9, 4) == [4, 5] and sizes(3, 8) == [3]
    assert sizes(1, 4) == [1] and sizes(0, 4) == []
    assert [chunk for chunk in example_chunks(range(7), 3)] == [[0, 1, 2], [3, 4, 5, 6]]
    with pytest.raises(ValueError, match="two examples or more"):
        list(example_chunks(range(4), 1))

    model, processor = fresh_model()
    collator = CurriculumCollator(processor, task="srt")
    batch = collator(pair_examples())
    swapped = swap_audio(batch)
    assert torch.equal(swapped["input_features"][1], batch["input_features"][0])
    assert torch.equal(swapped["input_features_mask"][0], batch["input_features_mask"][-1])
    assert torch.equal(swapped["input_ids"], batch["input_ids"]) and torch.equal(swapped["labels"], batch["labels"])
    with pytest.raises(ValueError, match="batch of 1"):
        audio_gain(model, [collator(pair_examples()[:1])])
    assert audio_gain_on_examples(model, pair_examples()[:1], collator, 8) is None


def test_a_model_that_reads_the_audio_has_a_large_gain(trained):
    model, processor = trained
    collator = CurriculumCollator(processor, task="srt")
    gain = audio_gain_on_examples(model, pair_examples(), collator, batch_size=4)
    assert gain.examples == 4 and gain.tokens == int((collator(pair_examples())["labels"] != -100).sum())
    assert gain.own_audio_loss < 0.05 < gain.other_audio_loss
    assert gain.overall == pytest.approx(gain.other_audio_loss / gain.own_audio_loss - 1)
    assert gain.overall > 1.0, gain
    assert set(gain.per_group) == {"eng", "deu"} and all(value > 1.0 for value in gain.per_group.values()), gain
    # The same clip everywhere: swapping changes nothing, whatever the model.
    same = [{**example, "audio": pair_examples()[0]["audio"]} for example in pair_examples()]
    assert audio_gain_on_examples(model, same, collator, batch_size=4).overall == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_fresh_model_has_about_no_gain(seed):
    # A new Q-Former's outputs barely differ from clip to clip: the LLM sees nearly the same audio for all of them.
    # Measured: |gain| ~ 1e-4 to 6e-4 (losses ~ 8.9); the trained model above scores hundreds.
    model, processor = fresh_model(seed)
    gain = audio_gain_on_examples(model, pair_examples(), CurriculumCollator(processor, task="srt"), batch_size=4)
    assert gain.own_audio_loss > 5 and abs(gain.overall) < 0.01, gain
    assert all(abs(value) < 0.01 for value in gain.per_group.values()), gain


def write_manifest(folder: Path) -> Path:
    (folder / "audio").mkdir(parents=True)
    rows = []
    for example in pair_examples():
        name = f"audio/{example['id']}.wav"
        sf.write(folder / name, example["audio"]["array"], SAMPLING_RATE, subtype="FLOAT")
        rows.append(
            {key: example[key] for key in ("id", "src_lang", "transcript", "tgt_lang", "translation")} | {"audio": name}
        )
    manifest = folder / "pairs.jsonl"
    return write_jsonl_manifest(manifest, rows)


def test_eval_writes_the_audio_gain(trained, tmp_path):
    from llmsrt.evaluation import EvalArguments, evaluate_model

    model, processor = trained
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    manifest = write_manifest(tmp_path / "data")
    common = {
        "model": str(tmp_path / "model"),
        "manifest": str(manifest),
        "batch_size": 3,
        "num_beams": 1,
        "max_new_tokens": 2,
        "comet_model": "none",
        "device": "cpu",
    }
    results = evaluate_model(EvalArguments(output_dir=str(tmp_path / "eval"), **common))
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())["audio_gain"]
    assert saved == results["audio_gain"]
    assert {"overall", "own_audio_loss", "other_audio_loss", "per_source_language"} <= set(saved)
    direct = audio_gain_on_examples(model, pair_examples(), CurriculumCollator(processor, task="srt"), batch_size=3)
    assert saved["overall"] == pytest.approx(direct.overall, rel=1e-3) and saved["overall"] > 1.0
    assert saved["own_audio_loss"] == pytest.approx(direct.own_audio_loss, rel=1e-3)
    assert set(saved["per_source_language"]) == {"eng", "deu"}
    assert "Audio gain" in (tmp_path / "eval" / "matrix.md").read_text()

    off = evaluate_model(EvalArguments(output_dir=str(tmp_path / "off"), audio_gain=False, **common))
    assert "audio_gain" not in off and "Audio gain" not in (tmp_path / "off" / "matrix.md").read_text()


def test_stage_info_holds_the_audio_gain_of_the_eval_split(tmp_path, caplog):
    from llmsrt.training import main
    from llmsrt.training.audio_gain_info import audio_gain_info

    manifest = build_toy_corpus(tmp_path / "data")
    with caplog.at_level("INFO", logger="llmsrt"):
        main(
            [
                RECIPE,
                "--dataset",
                "manifest",
                "--train_manifest",
                str(manifest),
                "--eval_manifest",
                str(manifest),
                "--stage",
                "asr",
                "--max_steps",
                "1",
                "--save_strategy",
                "no",
                "--output_dir",
                str(tmp_path / "run"),
                "--disable_tqdm",
                "true",
            ]
        )
    info = json.loads((tmp_path / "run" / "asr" / "stage_info.json").read_text())
    gain = info["audio_gain"]
    assert set(gain["per_source_language"]) == {"eng", "deu", "fra"} and gain["examples"] == 24
    assert all(math.isfinite(value) for value in [gain["overall"], *gain["per_source_language"].values()])
    assert gain["own_audio_loss"] > 0 and gain["other_audio_loss"] > 0
    assert gain["overall"] == pytest.approx(gain["other_audio_loss"] / gain["own_audio_loss"] - 1)
    assert any("Stage asr audio gain" in record.getMessage() for record in caplog.records)
    model, processor = fresh_model()
    assert audio_gain_info("asr", model, CurriculumCollator(processor, task="asr"), None, 8) == {}
