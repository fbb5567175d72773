import numpy as np
import pytest
from helpers import SAMPLING_RATE, make_clip, save_model
from speech_helpers import spoken_utterances
from transformers import pipeline

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6, "no_repeat_ngram_size": 0}


@pytest.fixture(scope="module")
def translator(lively, tmp_path_factory):
    model, processor = lively
    folder = save_model(tmp_path_factory.mktemp("pipeline-model"), model, processor)
    return pipeline("speech-translation", model=str(folder), trust_remote_code=True)


def test_pipeline_on_a_wav_file(translator, lively, wav_file):
    result = translator(str(wav_file), src_lang="eng", tgt_lang="deu", generate_kwargs=GREEDY)
    assert set(result) == {"transcription", "translation", "src_lang", "tgt_lang"}
    assert (result["src_lang"], result["tgt_lang"]) == ("eng", "deu")
    # The pipeline returns exactly what generate + post-processing give for the same clip.
    model, processor = lively
    batch = processor(audio=str(wav_file), src_lang="eng", tgt_lang="deu")
    answer = model.generate(**batch, **GREEDY)[:, batch["input_ids"].shape[1] :]
    expected = processor.post_process_speech_translation(answer, "srt", "eng", "deu")[0]
    assert {k: result[k] for k in ("transcription", "translation")} == expected
    assert result["transcription"] != ""


def test_batched_list_with_one_target_language_per_clip(translator):
    clips = [{"array": make_clip(s, i, 22050), "sampling_rate": 22050} for i, s in enumerate((1.0, 2.5, 1.5))]
    tgt_langs = ["deu", "fra", "spa"]
    batched = translator(clips, src_lang="eng", tgt_lang=tgt_langs, batch_size=3, generate_kwargs=GREEDY)
    singles = [translator(c, src_lang="eng", tgt_lang=t, generate_kwargs=GREEDY) for c, t in zip(clips, tgt_langs)]
    assert batched == singles
    assert [r["tgt_lang"] for r in batched] == tgt_langs
    assert len({r["transcription"] for r in batched}) > 1


def test_asr_and_smt_tasks(translator):
    clip = {"array": make_clip(1.0, 4), "sampling_rate": SAMPLING_RATE}
    asr = translator(clip, src_lang="fr_fr", task="asr", generate_kwargs=GREEDY)  # FLEURS names work too
    assert asr["translation"] is None and asr["tgt_lang"] is None and asr["src_lang"] == "fra"
    smt = translator(clip, src_lang="eng", tgt_lang="deu", task="smt", text="the train", generate_kwargs=GREEDY)
    assert smt["transcription"] == "the train" and isinstance(smt["translation"], str)
    with pytest.raises(ValueError, match="tgt_lang has 2 entries for 1 clip"):
        translator([clip], src_lang="eng", tgt_lang=["deu", "fra"])


def test_preprocess_extracts_the_features_of_one_clip(translator):
    """Feature extraction happens in `preprocess` (DataLoader workers run it), not in the model step."""
    clip = {"array": make_clip(1.0, 5, 22050), "sampling_rate": 22050}
    item = translator.preprocess({"audio": clip, "src_lang": "eng", "tgt_lang": "deu", "text": None})
    expected = translator.processor(audio=clip, src_lang="eng", tgt_lang="deu")
    for key in ("input_ids", "attention_mask", "input_features", "input_features_mask"):
        assert item[key].equal(expected[key])
    assert (item["task"], item["src_lang"], item["tgt_lang"]) == (["srt"], ["eng"], ["deu"])


def test_a_generator_streams_clip_by_clip(translator):
    clips = [{"array": utterance, "sampling_rate": SAMPLING_RATE} for utterance in spoken_utterances(4)]
    pulled = []

    def stream():
        for clip in clips:
            pulled.append(clip)
            yield clip

    results = translator(stream(), src_lang="eng", tgt_lang=["deu", "fra", "spa", "ita"], generate_kwargs=GREEDY)
    assert len(pulled) == 1  # before the first result is asked for, transformers peeks at the first clip only
    results = iter(results)
    first = next(results)
    assert len(pulled) < len(clips)  # one result needs only the first clips, not the whole stream
    rest = list(results)
    listed = translator(clips, src_lang="eng", tgt_lang=["deu", "fra", "spa", "ita"], batch_size=2,
                        num_workers=1, generate_kwargs=GREEDY)  # a DataLoader worker prepares the batches
    assert [first, *rest] == listed and len(listed) == 4


def test_clips_without_speech_get_no_text_in_place_in_lists_and_streams(translator):
    """Silence, noise and music are answered with empty texts marked `no_speech`, without running the model, at
    their own places among the clips with speech."""
    (speech,) = spoken_utterances(1)
    rng = np.random.default_rng(0)
    t = np.arange(2 * SAMPLING_RATE) / SAMPLING_RATE
    clips = [speech, np.zeros(SAMPLING_RATE), 0.2 * rng.standard_normal(2 * SAMPLING_RATE),
             0.2 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0), speech]
    clips = [{"array": clip.astype(np.float32), "sampling_rate": SAMPLING_RATE} for clip in clips]
    listed = translator(clips, src_lang="eng", tgt_lang="deu", batch_size=2, generate_kwargs=GREEDY)
    nothing = {"transcription": "", "translation": "", "src_lang": "eng", "tgt_lang": "deu", "no_speech": True}
    assert listed[1:4] == [nothing] * 3
    assert "no_speech" not in listed[0] and listed[0] == listed[4] and listed[0]["transcription"] != ""
    assert list(translator((clip for clip in clips), src_lang="eng", tgt_lang="deu", generate_kwargs=GREEDY)) == listed
    asr = translator(clips[2], src_lang="eng", task="asr", generate_kwargs=GREEDY)
    assert asr == {**nothing, "translation": None, "tgt_lang": None}


def test_a_dataset_streams_its_audio_column(translator):
    import datasets

    clips = [make_clip(s, i) for i, s in enumerate((1.0, 1.7))]
    rows = datasets.Dataset.from_dict({"audio": [{"array": c, "sampling_rate": SAMPLING_RATE} for c in clips],
                                       "id": ["a", "b"]})
    results = translator(rows, src_lang="eng", tgt_lang="deu", generate_kwargs=GREEDY)
    assert not isinstance(results, (list, dict))
    expected = [translator({"array": c, "sampling_rate": SAMPLING_RATE}, src_lang="eng", tgt_lang="deu",
                           generate_kwargs=GREEDY) for c in clips]
    assert list(results) == expected
    with pytest.raises(ValueError, match="tgt_lang has 3 entries for 2 clip"):
        list(translator(rows, src_lang="eng", tgt_lang=["deu", "fra", "spa"], generate_kwargs=GREEDY))
