"""The corpora as published: FLEURS' parquet export, CoVoST-2's TSVs over a Common Voice release, Common Voice itself;
long and corrupt clips; `python -m llmsrt.data.inspect_stage`."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import datasets
import librosa
import numpy as np
import pyarrow.parquet as pq
import pytest
from corpus_fixtures import (
    common_voice_row,
    fleurs_row,
    speech,
    write_common_voice_locale,
    write_covost_tsv,
    write_fleurs_export,
    write_mp3,
)
from helpers import SAMPLING_RATE

from llmsrt.data import CurriculumCollator, clip_waveform, load_common_voice, load_covost2, load_fleurs
from llmsrt.data.arguments import DataArguments
from llmsrt.data.stage_data import load_stage_data

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = {1: "The train leaves at nine.", 2: "Good morning!", 3: "Where is the station?", 4: "A long story."}
GERMAN = {1: "Der Zug fährt um neun ab.", 2: "Guten Morgen!", 4: "Eine lange Geschichte."}  # no sentence 3


@pytest.fixture(scope="module")
def fleurs(tmp_path_factory):
    """en_us: sentence 1 read by two speakers, 2 and 3 by one, 4 in a 31-s clip; de_de: 1 by two speakers (other
    ones), 2, and 4 (31 s); de_de's validation split exported only partly."""
    english = [fleurs_row("en_us", "train", 1, ENGLISH[1], 1), fleurs_row("en_us", "train", 1, ENGLISH[1], 2, gender=1),
               fleurs_row("en_us", "train", 2, ENGLISH[2], 3), fleurs_row("en_us", "train", 3, ENGLISH[3], 4),
               fleurs_row("en_us", "train", 4, ENGLISH[4], 5, seconds=31.0)]
    german = [fleurs_row("de_de", "train", 1, GERMAN[1], 11), fleurs_row("de_de", "train", 1, GERMAN[1], 12),
              fleurs_row("de_de", "train", 2, GERMAN[2], 13), fleurs_row("de_de", "train", 4, GERMAN[4], 14, 31.0)]
    return write_fleurs_export(tmp_path_factory.mktemp("fleurs-export"), {
        "en_us": {"train": english, "validation": english[:3]},
        "de_de": {"train": german, "partial-validation": german[:2]},
    })


QUOTED = 'Il a dit "oui" \\ non.'  # a quote and a backslash, as published (no quoting, backslash escaped)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A Common Voice release (fr, en, it) and the CoVoST-2 TSVs fr_en and en_de over it."""
    root = tmp_path_factory.mktemp("corpora")
    cv = root / "cv-corpus-4-2019-12-10"
    french = {f"common_voice_fr_{n}.mp3": (1.0 + 0.25 * n, 48000 if n % 2 else 32000) for n in range(1, 6)}
    validated = [common_voice_row("fr", name, f"Phrase {QUOTED} numéro {n}.", n)
                 for n, name in enumerate(sorted(french), 1)]
    validated.append(common_voice_row("fr", "common_voice_fr_7.mp3", "Une phrase sans clip.", 7))  # no clip file
    write_common_voice_locale(cv, "fr", {"validated": validated, "train": validated[:2] + validated[5:],
                                         "dev": validated[2:3], "test": validated[3:4]}, french)
    english = {"common_voice_en_1.mp3": (1.0, 48000), "common_voice_en_2.mp3": (1.5, 48000)}
    write_common_voice_locale(cv, "en", {"validated": [common_voice_row("en", name, f"Sentence {n}.", n)
                                                       for n, name in enumerate(sorted(english), 1)]}, english)
    italian = {"common_voice_it_1.mp3": (1.0, 48000), "common_voice_it_2.mp3": (31.0, 48000),
               "common_voice_it_3.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8}  # corrupt
    rows = [common_voice_row("it", name, f"Frase {n}.", n) for n, name in enumerate(sorted(italian), 1)]
    write_common_voice_locale(cv, "it", {"train": rows, "validated": rows}, italian)
    covost = root / "covost2"
    write_covost_tsv(covost, "fr", "en", [
        {"path": "common_voice_fr_1.mp3", "translation": f"He said {QUOTED}", "split": "train"},
        {"path": "common_voice_fr_2.mp3", "translation": "Number two.", "split": "train_covost"},
        {"path": "common_voice_fr_3.mp3", "translation": "Number three.", "split": "dev"},
        {"path": "common_voice_fr_4.mp3", "translation": "Number four.", "split": "test"},
        {"path": "common_voice_fr_7.mp3", "translation": "No clip.", "split": "train"},  # in validated.tsv, no file
        {"path": "common_voice_fr_9.mp3", "translation": "Not validated.", "split": "train"},
    ])
    write_covost_tsv(covost, "en", "de", [{"path": "common_voice_en_1.mp3", "translation": "Satz 1.", "split": "train"},
                                          {"path": "common_voice_en_2.mp3", "translation": "Satz 2.", "split": "dev"}])
    return {"cv": cv, "covost": covost}


def fleurs_args(folder, **overrides) -> DataArguments:
    return DataArguments(dataset="fleurs", dataset_path=str(folder), **{"directions": ["eng-deu"], **overrides})


def test_fixture_export_carries_the_scripts_features(fleurs):
    features = datasets.Features.from_arrow_schema(pq.read_schema(fleurs / "en_us" / "train" / "0000.parquet"))
    assert isinstance(features["audio"], datasets.Audio) and features["audio"].sampling_rate == 16000
    assert features["gender"].names == ["male", "female", "other"] and "en_us" in features["lang_id"].names
    assert sorted(path.name for path in (fleurs / "en_us" / "train").iterdir()) == ["0000.parquet", "0001.parquet"]


@pytest.mark.parametrize("streaming", [False, True])
def test_fleurs_pairs_join_on_the_sentence_id_with_several_speakers(fleurs, streaming):
    pairs = list(load_fleurs("eng", "deu", "train", path=str(fleurs), streaming=streaming))
    # every English speaker of a sentence German also has is an example; sentence 3 has no German text
    assert sorted((row["id"], row["translation"]) for row in pairs) == [
        ("1", GERMAN[1]), ("1", GERMAN[1]), ("2", GERMAN[2]), ("4", GERMAN[4])]
    assert {(row["src_lang"], row["tgt_lang"]) for row in pairs} == {("eng", "deu")}
    assert sorted(row["transcript"] for row in pairs if row["id"] == "1") == [ENGLISH[1]] * 2
    assert len({row["audio"]["path"] for row in pairs if row["id"] == "1"}) == 2  # two speakers, two clips
    back = list(load_fleurs("deu", "eng", "train", path=str(fleurs), streaming=streaming))
    assert sorted(row["translation"] for row in back) == sorted([ENGLISH[1], ENGLISH[1], ENGLISH[2], ENGLISH[4]])
    asr = list(load_fleurs("eng", None, "train", path=str(fleurs), streaming=streaming))
    assert len(asr) == 5 and all(row["translation"] is None for row in asr)


def test_fleurs_reads_only_the_targets_text_columns(fleurs, monkeypatch):
    """The target language's audio is never read: only its `id` and `raw_transcription` column chunks."""
    read = []
    original = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda source, **kw: read.append(kw.get("columns")) or original(source, **kw))
    pairs = load_fleurs("eng", "deu", "train", path=str(fleurs))
    assert read == [["id", "raw_transcription"]] * 2 and len(pairs) == 4  # de_de/train: 0000 and 0001.parquet


def test_fleurs_audio_reaches_the_model_at_16khz(fleurs, tiny):
    _, processor = tiny
    data = load_stage_data(fleurs_args(fleurs, directions=["eng-deu"]), "srt", "unused")
    first = data.examples[0]
    waveform = clip_waveform(first)
    original = speech(1.0, 1)
    np.testing.assert_allclose(waveform, original, atol=1e-3)  # the stored 16-bit WAV, decoded
    batch = CurriculumCollator(processor, "srt")([data.examples[row] for row in range(len(data.examples))])
    assert batch["input_features"].shape[0] == 4


def test_a_partial_export_is_read_with_a_warning(fleurs, caplog):
    with caplog.at_level(logging.WARNING):
        rows = load_fleurs("deu", None, "validation", path=str(fleurs))
    assert len(rows) == 2
    assert "only a partial export" in caplog.text and "partial-validation" in caplog.text


def test_fleurs_names_what_is_missing(fleurs, tmp_path):
    with pytest.raises(ValueError, match="not found: .*nowhere"):
        load_fleurs("eng", None, "train", path=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"fr_fr/train.*configs there: de_de, en_us"):
        load_fleurs("fra", None, "train", path=str(fleurs))
    with pytest.raises(ValueError, match="train, validation, test; got 'dev'"):
        load_fleurs("eng", None, "dev", path=str(fleurs))


def test_covost2_training_split_is_train_plus_train_covost(release):
    report_data = load_stage_data(DataArguments(dataset="covost2", dataset_path=str(release["covost"]),
                                                data_dir=str(release["cv"]), directions=["fra-eng"]), "srt", "unused")
    rows = sorted(report_data.examples, key=lambda row: row["id"])
    assert [row["id"] for row in rows] == ["common_voice_fr_1.mp3", "common_voice_fr_2.mp3"]
    assert rows[0]["translation"] == f"He said {QUOTED}" and '"oui" \\ non' in rows[0]["translation"]
    assert rows[0]["transcript"] == f"Phrase {QUOTED} numéro 1."  # from validated.tsv, quote and backslash intact
    assert (rows[0]["src_lang"], rows[0]["tgt_lang"]) == ("fra", "eng")
    assert report_data.report.as_dict()["skipped"] == {"missing clip": 1, "not in validated.tsv": 1}
    dev = load_covost2("fra", "eng", "dev", path=str(release["covost"]), data_dir=str(release["cv"]))
    test = load_covost2("fra", "eng", "test", path=str(release["covost"]), data_dir=str(release["cv"]))
    assert [row["id"] for row in dev] == ["common_voice_fr_3.mp3"] and [row["id"] for row in test] == [
        "common_voice_fr_4.mp3"]


def test_covost2_directions_that_do_not_exist_and_all(release):
    with pytest.raises(ValueError, match=r"fra-deu.*fra-eng"):
        load_stage_data(DataArguments(dataset="covost2", dataset_path=str(release["covost"]),
                                      data_dir=str(release["cv"]), directions=["fra-deu"]), "srt", "unused")
    everything = DataArguments(dataset="covost2", dataset_path=str(release["covost"]), data_dir=str(release["cv"]),
                               directions=["all"], languages=["eng", "fra", "deu"])
    with pytest.raises(ValueError, match=r"de_en\.tsv.*covost_v2\.en_de\.tsv"):
        load_stage_data(everything, "srt", "unused")  # all = fra-eng, deu-eng, eng-deu: de_en is not downloaded
    from llmsrt.data.covost2 import covost_directions, covost_directions_among

    assert len(covost_directions()) == 36 and sum(tgt == "eng" for _, tgt in covost_directions()) == 21
    assert covost_directions_among(["eng", "fra", "deu", "jpn"]) == [
        ("fra", "eng"), ("deu", "eng"), ("jpn", "eng"), ("eng", "deu"), ("eng", "jpn")]


def test_common_voice_release_mp3_at_48_and_32_khz_decode_at_16khz(release):
    train = load_common_voice("fra", "train", data_dir=str(release["cv"]))
    assert [row["id"] for row in train] == ["common_voice_fr_1.mp3", "common_voice_fr_2.mp3"]  # fr_7's clip is missing
    assert train[0]["transcript"] == f"Phrase {QUOTED} numéro 1." and train[0]["translation"] is None
    assert len(load_common_voice("fra", "validated", data_dir=str(release["cv"]))) == 5
    for row, (seconds, rate) in zip(train, [(1.25, 48000), (1.5, 32000)]):
        assert row["audio"]["path"].endswith(".mp3")
        waveform = clip_waveform(row)
        expected = librosa.resample(speech(seconds, 100 + int(row["id"][-5]) - 1, rate), orig_sr=rate,
                                    target_sr=SAMPLING_RATE)
        assert abs(waveform.size - expected.size) < 0.06 * SAMPLING_RATE  # MP3 adds some encoder delay/padding
        lag = np.argmax(np.correlate(waveform[:8000], expected[:4000], mode="valid"))
        assert np.corrcoef(waveform[lag : lag + 4000], expected[:4000])[0, 1] > 0.9
    with pytest.raises(ValueError, match=r"'de'; it has: en, fr, it"):
        load_common_voice("deu", "train", data_dir=str(release["cv"]))
    with pytest.raises(ValueError, match="train, dev, test, validated; got 'other'"):
        load_common_voice("fra", "other", data_dir=str(release["cv"]))


def test_long_clips_are_cut_to_the_window_and_counted_or_skipped(fleurs, tiny):
    _, processor = tiny
    data = load_stage_data(fleurs_args(fleurs), "asr", "unused")
    assert data.report.as_dict()["trimmed"] == 1 and data.report.as_dict()["examples"] == 5
    assert data.report.as_dict()["audio_seconds"] == pytest.approx(4 * 1.0 + 30.0, abs=0.01)
    long = next(row for row in data.examples if row["id"] == "4")
    assert clip_waveform(long).size == 30 * SAMPLING_RATE
    batch = CurriculumCollator(processor, "asr")([long])  # the processor alone refuses a 31-s clip
    assert batch["input_features"].shape[0] == 1
    skipped = load_stage_data(fleurs_args(fleurs, long_audio="skip"), "asr", "unused")
    assert skipped.report.as_dict()["skipped"] == {"longer than 30 s": 1} and len(skipped.examples) == 4
    with pytest.raises(ValueError, match="trim or skip, got 'cut'"):
        fleurs_args(fleurs, long_audio="cut")


def test_a_corrupt_clip_is_named_or_counted(release):
    args = DataArguments(dataset="common_voice", data_dir=str(release["cv"]), directions=["all"], languages=["ita"])
    with pytest.raises(ValueError, match="common_voice_it_3.mp3"):
        load_stage_data(args, "asr", "unused")
    args.skip_invalid_rows = True
    data = load_stage_data(args, "asr", "unused")
    assert data.report.as_dict() == {"examples": 2, "by_direction": {"ita": 2}, "audio_seconds": pytest.approx(31.0,
                                     abs=0.1), "trimmed": 1, "skipped": {"unreadable audio": 1}}
    with pytest.raises(ValueError, match="transcripts only: use it for the align and asr"):
        load_stage_data(args, "srt", "unused")


def inspect(*arguments, cwd=None):
    return subprocess.run([sys.executable, "-m", "llmsrt.data.inspect_stage", *map(str, arguments)], check=False,
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_inspect_writes_the_counts_and_examples(fleurs, tmp_path):
    summary, lines = tmp_path / "counts.json", tmp_path / "examples.jsonl"
    done = inspect("--dataset", "fleurs", "--dataset_path", fleurs, "--directions", "eng-deu", "deu-eng", "--stage",
                   "srt", "--split", "train", "--json", summary, "--examples_out", lines)
    assert done.returncode == 0, done.stderr
    counts = json.loads(summary.read_text())
    assert set(counts) == {"examples", "by_direction", "audio_seconds", "trimmed", "skipped"}
    assert counts["by_direction"] == {"deu-eng": 4, "eng-deu": 4} and counts["examples"] == 8
    assert counts["trimmed"] == 2 and counts["skipped"] == {}
    assert counts["audio_seconds"] == pytest.approx(6 * 1.0 + 2 * 30.0, abs=0.01)
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(rows) == 8 and {"id", "src_lang", "tgt_lang", "transcript", "translation", "audio_seconds"} <= set(
        rows[0])
    assert max(row["audio_seconds"] for row in rows) == 30.0
    assert "| eng-deu | 4 |" in done.stdout and "| deu-eng | 4 |" in done.stdout
    # Other libraries may log to stderr (torchao's optional CUDA kernels, progress bars); inspect's own failures are
    # a traceback or its "error: ..." line.
    assert "Traceback" not in done.stderr
    assert not any(line.startswith("error:") for line in done.stderr.splitlines()), done.stderr


def test_inspect_stops_early_and_fails_loudly_on_a_bad_direction_or_folder(fleurs, release, tmp_path, capsys):
    from llmsrt.data.inspect_stage import main

    summary = tmp_path / "counts.json"
    assert main(["--dataset", "fleurs", "--dataset_path", str(fleurs), "--directions", "eng-deu", "--stage", "asr",
                 "--max_examples", "2", "--json", str(summary)]) == 0
    assert json.loads(summary.read_text())["examples"] == 2
    assert main(["--dataset", "covost2", "--dataset_path", str(release["covost"]), "--data_dir", str(release["cv"]),
                 "--directions", "fra-deu", "--stage", "srt"]) == 2
    error = capsys.readouterr().err
    assert "no fra-deu direction" in error and "fra-eng" in error
    assert main(["--dataset", "common_voice", "--data_dir", str(tmp_path / "nowhere"), "--directions", "all",
                 "--languages", "fra", "--stage", "asr"]) == 2
    assert "release folder not found" in capsys.readouterr().err
    # a train.py recipe's data entries, overridden from the command line
    assert main([str(ROOT / "recipes" / "paper-qwen2.5-3b-covost2.yaml"), "--dataset_path", str(release["covost"]),
                 "--data_dir", str(release["cv"]), "--directions", "fra-eng", "--stage", "srt", "--split", "dev",
                 "--json", str(summary)]) == 0
    assert json.loads(summary.read_text())["by_direction"] == {"fra-eng": 1}


def test_training_and_evaluation_read_mp3_corpora_and_stage_info_counts(release, tmp_path):
    """A tiny curriculum stage on Common Voice MP3 clips (48 kHz, a 31-s one, a corrupt one), an SRT step on
    CoVoST-2's MP3 clips, then eval.py's evaluation on CoVoST-2's test split of MP3 clips at 48 and 32 kHz."""
    from llmsrt.evaluation import EvalArguments, evaluate_model
    from llmsrt.training import main

    main([str(ROOT / "recipes" / "tiny.yaml"), "--dataset", "common_voice", "--data_dir", str(release["cv"]),
          "--directions", "all", "--languages", "ita", "--skip_invalid_rows", "true", "--stage", "asr",
          "--max_steps", "1", "--per_device_train_batch_size", "2", "--save_strategy", "no",
          "--output_dir", str(tmp_path / "run"), "--disable_tqdm", "true"])
    info = json.loads((tmp_path / "run" / "asr" / "stage_info.json").read_text())
    assert info["data"] == {"examples": 2, "by_direction": {"ita": 2}, "audio_seconds": pytest.approx(31.0, abs=0.1),
                            "trimmed": 1, "skipped": {"unreadable audio": 1}}
    # The Italian ASR folder knows Italian only: an SRT step on CoVoST-2's fr-en adds French and English to it.
    main([str(ROOT / "recipes" / "tiny.yaml"), "--model_name_or_path", str(tmp_path / "run" / "asr"),
          "--dataset", "covost2", "--dataset_path", str(release["covost"]), "--data_dir", str(release["cv"]),
          "--directions", "fra-eng", "--stage", "srt", "--max_steps", "1", "--per_device_train_batch_size", "2",
          "--save_strategy", "no", "--output_dir", str(tmp_path / "run"), "--disable_tqdm", "true"])
    languages = json.loads((tmp_path / "run" / "srt" / "processor_config.json").read_text())["languages"]
    assert languages == ["ita", "fra", "eng"]
    results = evaluate_model(EvalArguments(
        model=str(tmp_path / "run" / "srt"), output_dir=str(tmp_path / "eval"), dataset="covost2",
        dataset_path=str(release["covost"]), data_dir=str(release["cv"]), directions=["fra-eng"], split="dev",
        comet_model="none", audio_gain=False, num_beams=1, max_new_tokens=3, no_repeat_ngram_size=0))
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in predictions] == ["common_voice_fr_3.mp3"] and results is not None


def test_the_pipeline_reads_an_mp3_file_at_48khz(saved_tiny, tmp_path):
    from transformers import pipeline

    clip = write_mp3(tmp_path / "clip.mp3", speech(2.0, 7, 48000), 48000)
    translator = pipeline("speech-translation", model=str(saved_tiny), trust_remote_code=True)
    result = translator(str(clip), src_lang="eng", tgt_lang="deu",
                        generate_kwargs={"do_sample": False, "num_beams": 1, "max_new_tokens": 3})
    assert set(result) == {"transcription", "translation", "src_lang", "tgt_lang"}
    processor = translator.processor
    features = processor(audio=str(clip), src_lang="eng", tgt_lang="deu")["input_features_mask"]
    assert features.sum() == pytest.approx(2.0 * SAMPLING_RATE / processor.feature_extractor.hop_length, abs=8)


def test_the_corpus_recipes_parse_and_name_real_directions():
    CPU = ["--bf16", "false"]  # no GPU here
    from llmsrt.data.covost2 import covost_directions
    from llmsrt.training import parse_train_args

    _, covost, _, _, _ = parse_train_args([str(ROOT / "recipes" / "paper-qwen2.5-3b-covost2.yaml"), *CPU])
    pairs = [tuple(direction.split("-")) for direction in covost.directions]
    assert set(pairs) <= set(covost_directions())  # directions CoVoST-2 has
    parse_train_args([str(ROOT / "recipes" / "paper-qwen2.5-3b-common-voice-asr.yaml"), *CPU])
    _, fleurs, _, _, _ = parse_train_args([str(ROOT / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml"), *CPU])
    from llmsrt.data.fleurs import export_root

    assert export_root("google/fleurs") == "hf://datasets/google/fleurs@~parquet"


def test_a_stream_is_checked_row_by_row(release):
    args = DataArguments(dataset="common_voice", data_dir=str(release["cv"]), directions=["all"], languages=["ita"],
                         streaming=True)
    data = load_stage_data(args, "asr", "unused")
    assert isinstance(data.examples, datasets.IterableDataset) and not data.report.counted
    with pytest.raises(ValueError, match="Unreadable audio.*common_voice_it_3.mp3"):
        list(data.examples)
    args.skip_invalid_rows = True
    rows = list(load_stage_data(args, "asr", "unused").examples)
    assert [row["id"] for row in rows] == ["common_voice_it_1.mp3", "common_voice_it_2.mp3"]
    assert clip_waveform(rows[1]).size == 30 * SAMPLING_RATE
