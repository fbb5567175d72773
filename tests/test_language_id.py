"""Spoken-language detection: a linear head on the frozen encoder's pooled frames, trained on the demo's eSpeak
voices and judged on its held-out voices; `auto` in the pipeline; saved with the model; trained by train.py and
reported by eval.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import CORPUS, SAMPLING_RATE, save_model
from speech_helpers import GREEDY, recording_with_pauses
from transformers import pipeline

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.demo.corpus import HELD_OUT_STYLES, TRAIN_STYLES, VOICES
from llmsrt.testing import build_tiny_model_and_processor
from llmsrt.training.language_id import language_id_accuracy, train_language_id_head

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = {
    "eng": ["good morning my friend", "the train leaves at nine", "where is the station", "i like tea very much",
            "see you tomorrow"],
    "deu": ["guten morgen mein freund", "der zug fährt um neun", "wo ist der bahnhof", "ich mag tee sehr",
            "bis morgen"],
    "fra": ["bonjour mon ami", "le train part à neuf heures", "où est la gare", "j'aime beaucoup le thé",
            "à demain"],
}


def demo_voice_rows(engine, styles):
    return [
        {"id": f"{language}-{n}-{variant}", "src_lang": language,
         "audio": {"array": engine.synthesize(text, f"{VOICES[language]}+{variant}", rate, pitch),
                   "sampling_rate": SAMPLING_RATE}}
        for language, texts in SENTENCES.items() for n, text in enumerate(texts)
        for variant, rate, pitch in styles
    ]


@pytest.fixture(scope="module")
def voices(one_thread):
    from llmsrt.demo.speech_synthesis import ESpeak

    engine = ESpeak()
    return demo_voice_rows(engine, TRAIN_STYLES), demo_voice_rows(engine, HELD_OUT_STYLES)


@pytest.fixture(scope="module")
def detector(voices):
    """A tiny random model whose head learnt the three languages from the demo corpus's nine training styles."""
    train, held_out = voices
    model, processor = build_tiny_model_and_processor(CORPUS)
    notes = train_language_id_head(model.eval(), processor, train, held_out)
    return model, processor, notes


def test_head_learns_the_languages_of_the_demo_voices(detector, voices):
    model, processor, notes = detector
    assert notes["languages"] == ["deu", "eng", "fra"] == model.config.language_id_languages
    # Held-out voices (other speakers, speeds and pitches): well above the 1/3 of chance, even on a random encoder.
    assert notes["eval"]["accuracy"] >= 0.7, notes["eval"]
    assert set(notes["eval"]["per_language"]) == {"deu", "eng", "fra"}
    assert notes["eval"] == language_id_accuracy(model, processor, voices[1])
    assert notes["train"]["accuracy"] >= notes["eval"]["accuracy"]


def test_auto_in_the_pipeline_uses_the_head_and_survives_save_and_load(detector, voices, tmp_path):
    model, processor, notes = detector
    folder = save_model(tmp_path / "with-head", model, processor)
    assert json.loads((folder / "config.json").read_text())["language_id_languages"] == ["deu", "eng", "fra"]
    loaded = LLMSRTForConditionalGeneration.from_pretrained(folder)
    assert loaded.language_id_head is not None
    translator = pipeline("speech-translation", model=str(folder), trust_remote_code=True)
    held_out = voices[1]
    # No src_lang means auto with a head; "auto" too. Batched detection matches the head's own accuracy.
    results = translator([row["audio"] for row in held_out], tgt_lang="eng", batch_size=8, generate_kwargs=GREEDY)
    detected = [result["src_lang"] for result in results]
    accuracy = np.mean([guess == row["src_lang"] for guess, row in zip(detected, held_out)])
    assert accuracy == pytest.approx(notes["eval"]["accuracy"])
    assert translator(held_out[0]["audio"], src_lang="auto", tgt_lang="eng", generate_kwargs=GREEDY)["src_lang"] \
        == detected[0]
    # A stream (generator) is detected clip by clip as it is read, with the same answers.
    streamed = translator((row["audio"] for row in held_out[:6]), tgt_lang="eng", batch_size=4, num_workers=1,
                          generate_kwargs=GREEDY)
    assert [result["src_lang"] for result in streamed] == detected[:6]
    # A recording: one language for the whole file, decided from its segments.
    french = [row["audio"]["array"] for row in held_out if row["src_lang"] == "fra"][:4]
    waveform, spans = recording_with_pauses(french, [0.8, 1.0, 0.9, 1.1])
    sf.write(tmp_path / "french.wav", waveform, SAMPLING_RATE)
    result = translator(str(tmp_path / "french.wav"), src_lang="auto", tgt_lang="eng", return_timestamps=True,
                        generate_kwargs=GREEDY)
    assert result["src_lang"] == "fra" and len(result["chunks"]) == len(spans)


def test_train_py_trains_the_head_in_the_first_stage_and_eval_reports_it(tmp_path, one_thread):
    from llmsrt.evaluation import EvalArguments, evaluate_model
    from llmsrt.training import main

    output = tmp_path / "run"
    main([str(ROOT / "recipes" / "tiny.yaml"), "--output_dir", str(output), "--curriculum_stages", "asr", "smt",
          "--max_steps", "2", "--language_id_head", "true", "--disable_tqdm", "true", "--save_strategy", "no"])
    asr_info = json.loads((output / "asr" / "stage_info.json").read_text())
    assert asr_info["language_id"]["languages"] == ["deu", "eng", "fra"]  # the toy set's three languages
    assert asr_info["language_id"]["train"]["examples"] == 24
    assert "language_id" not in json.loads((output / "smt" / "stage_info.json").read_text())  # inherited
    smt = LLMSRTForConditionalGeneration.from_pretrained(output / "smt")
    asr = LLMSRTForConditionalGeneration.from_pretrained(output / "asr")
    for name, tensor in asr.language_id_head.state_dict().items():
        assert np.array_equal(tensor.numpy(), smt.language_id_head.state_dict()[name].numpy()), name
    results = evaluate_model(EvalArguments(
        model=str(output / "smt"), output_dir=str(tmp_path / "eval"), dataset="toy", split="train", num_beams=1,
        max_new_tokens=4, comet_model="none", audio_gain=False, device="cpu"))
    assert results["language_id"]["examples"] == 24
    assert set(results["language_id"]["per_language"]) == {"deu", "eng", "fra"}
    assert results["language_id"]["accuracy"] == asr_info["language_id"]["train"]["accuracy"]
    assert "Spoken-language ID accuracy" in (tmp_path / "eval" / "matrix.md").read_text()


def test_the_head_pools_the_speech_between_the_silences(detector):
    from llmsrt.language_id import speech_frame_mask, speech_interval

    _, processor, _ = detector
    rate = SAMPLING_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)
    waveform = np.concatenate([np.zeros(rate // 2), tone, np.zeros(rate)]).astype(np.float32)
    start, end = speech_interval(waveform)
    assert abs(start - rate // 2) <= 512 and abs(end - 3 * rate // 2) <= 512
    assert speech_interval(np.zeros(rate, dtype=np.float32)) == (0, rate)  # nothing to trim to: the whole clip
    mask = speech_frame_mask([(rate // 2, 3 * rate // 2)], 1500, 320)
    assert mask.shape == (1, 1500) and mask[0, 25:75].all() and mask.sum() == 50
    inputs = processor.language_id_inputs([waveform])
    assert inputs["speech_mask"].shape == (1, inputs["input_features"].shape[-1] // 2)
    assert 48 <= int(inputs["speech_mask"].sum()) <= 53


def test_the_head_reads_the_encoder_outputs_a_training_run_cached(voices, tmp_path):
    """The head's features are the encoder outputs of the clips exactly as the curriculum encodes them: after the
    training batches have gone through the encoder cache, fitting the head encodes nothing new."""
    from llmsrt.data.collator import CurriculumCollator

    train, _ = voices
    model, processor = build_tiny_model_and_processor(CORPUS)
    examples = [{**row, "transcript": "x"} for row in train[::12]]  # 12 clips, all three languages
    with model.eval().using_encoder_cache(model.disk_encoder_cache(tmp_path / "cache")):
        for start in range(0, len(examples), 4):
            batch = CurriculumCollator(processor, task="asr")(examples[start:start + 4])
            model.encode_frames(batch["input_features"], batch["input_features_mask"])
    entries = sorted(path.name for path in (tmp_path / "cache").rglob("*.safetensors"))
    assert len(entries) == 12
    notes = train_language_id_head(model, processor, examples, encoder_cache_dir=tmp_path / "cache")
    assert notes["train"]["examples"] == 12
    assert sorted(path.name for path in (tmp_path / "cache").rglob("*.safetensors")) == entries


def test_auto_encodes_each_clip_once_and_translates_as_the_detected_language(detector, voices, tmp_path):
    """The head reads the log-mel features that generation reads: with `auto`, the encoder's outputs are kept from
    detection to generation (each clip is encoded once), and the answers are those of the detected language given
    explicitly."""
    model, processor, _ = detector
    folder = save_model(tmp_path / "with-head", model, processor)
    translator = pipeline("speech-translation", model=str(folder), trust_remote_code=True)
    clips = [row["audio"] for row in voices[1][::5]]  # 6 held-out clips, all three languages
    encoded_rows = []
    hook = translator.model.audio_encoder.register_forward_hook(
        lambda module, args, output: encoded_rows.append(int(args[0].shape[0])))
    try:
        detected = translator(clips, tgt_lang="eng", batch_size=4, generate_kwargs=GREEDY)
        assert sum(encoded_rows) == len(clips)
        encoded_rows.clear()
        given = translator(clips, src_lang=[result["src_lang"] for result in detected], tgt_lang="eng", batch_size=4,
                           generate_kwargs=GREEDY)
        assert sum(encoded_rows) == len(clips)
    finally:
        hook.remove()
    assert detected == given
    assert translator.model.encoder_cache is None  # the kept outputs are gone after the call


def test_live_translation_with_auto_sums_the_evidence_of_its_finals(detector, voices):
    from llmsrt.inference.live import LiveTranslator

    model, processor, _ = detector
    translator = pipeline("speech-translation", model=model, processor=processor)
    french = [row["audio"]["array"] for row in voices[1] if row["src_lang"] == "fra"][:4]
    waveform, spans = recording_with_pauses(french, [0.8, 1.0, 0.9, 1.1])
    offline = translator({"array": waveform, "sampling_rate": SAMPLING_RATE}, src_lang="auto", tgt_lang="eng",
                         return_timestamps=True, generate_kwargs=GREEDY)
    session = LiveTranslator(translator, "auto", "eng", partials=False, generate_kwargs=GREEDY)
    finals = [e for e in session.stream(waveform[i : i + 4000] for i in range(0, waveform.size, 4000))]
    # After the last final, the live translator has summed the same evidence as the offline pipeline's decision.
    assert offline["src_lang"] == "fra" and finals[-1].src_lang == "fra"
    assert [(e.start, e.end) for e in finals] == [chunk["timestamp"] for chunk in offline["chunks"]]
    # The last final was decoded in the language it reports, as the offline pipeline decoded that segment.
    assert finals[-1].transcription == offline["chunks"][-1]["transcription"]
