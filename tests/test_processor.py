import librosa
import numpy as np
import pytest
import torch
from helpers import SAMPLING_RATE, make_clip

from llmsrt.processing_llmsrt import IGNORE_INDEX
from llmsrt.prompt_builder import PromptBuilder

PROMPTS = PromptBuilder()


def test_placeholders_equal_num_query_tokens(tiny):
    model, processor = tiny
    clips = [make_clip(1.0, 0), make_clip(2.5, 1)]
    batch = processor(audio=clips, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    counts = (batch["input_ids"] == processor.audio_token_id).sum(dim=1)
    assert counts.tolist() == [model.config.num_query_tokens] * 2
    assert processor.audio_token_id == model.config.audio_token_id


def test_prompt_and_answer_layouts_follow_the_paper():
    assert PROMPTS.instruction("asr", "eng") == "<|eng|>"
    assert PROMPTS.instruction("srt", "eng", "deu") == "<|eng|><|deu|>"
    assert PROMPTS.instruction("smt", "eng", "deu", "the train") == "the train<|eng|><|deu|>"
    srt = PROMPTS.answer("srt", "eng", "deu", transcription="the train", translation="der Zug")
    assert srt == "the train<|eng|><|deu|>der Zug"
    assert PROMPTS.answer("asr", "eng", transcription=" hi ") == "hi"
    assert PROMPTS.answer("smt", "eng", "fra", translation="le train") == "le train"
    assert PROMPTS.prompt("srt", "eng", "deu", audio_placeholders=2) == "<|audio|><|audio|><|eng|><|deu|>"


def test_a_tag_map_writes_and_reads_the_mapped_tag_everywhere():
    """`{"zho": "cmn"}` (the authors' 2026 tag for Mandarin): prompts, answers and their split all use `<|cmn|>`."""
    tagged = PromptBuilder(language_tags={"zho": "cmn"}, num_query_tokens=1)
    assert tagged.prompt("srt", "eng", "zho") == "<|audio|><|eng|><|cmn|>"
    answer = tagged.answer("srt", "zho", "eng", transcription="火车", translation="the train")
    assert answer == "火车<|cmn|><|eng|>the train"
    assert tagged.split_answer(answer, "zho", "eng") == ("火车", "the train")
    with pytest.raises(ValueError, match=r"language_tags\['zho'\] = 'CMN'.*three lowercase letters"):
        PromptBuilder(language_tags={"zho": "CMN"})


def test_labels_cover_answer_and_eos_only(tiny):
    _, processor = tiny
    clips = [make_clip(1.0, 0), make_clip(2.0, 1)]
    targets = [
        {"transcription": "the train", "translation": "der zug"},
        {"transcription": "good morning my friend", "translation": "guten morgen mein freund"},
    ]
    batch = processor(audio=clips, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu", targets=targets)
    tokenizer = processor.tokenizer
    for row, target in enumerate(targets):
        answer = PROMPTS.answer("srt", "eng", "deu", **target)
        expected = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX].tolist()
        assert kept == expected
        # Right padding for training: the answer is the last real part of the row, and pads carry no loss.
        real = batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][real][-len(expected) :].tolist() == expected
        assert (labels[~real] == IGNORE_INDEX).all()
        assert (labels[batch["input_ids"][row] == processor.audio_token_id] == IGNORE_INDEX).all()
    assert batch["attention_mask"][:, 0].all(), "training batches are right-padded"


def test_generation_batches_are_left_padded(tiny):
    _, processor = tiny
    batch = processor(
        audio=[make_clip(1.0, 0), make_clip(1.0, 1)],
        sampling_rate=SAMPLING_RATE,
        task="smt",
        text=["hi", "good morning my friend, the train leaves at nine"],
        src_lang="eng",
        tgt_lang="fra",
    )
    mask = batch["attention_mask"]
    assert mask[:, -1].all() and not mask[0, 0]


def test_resamples_and_mixes_stereo(tiny):
    _, processor = tiny
    clip = make_clip(2.0, 5, sampling_rate=44100)
    resampled = librosa.resample(clip, orig_sr=44100, target_sr=SAMPLING_RATE)
    at_44k = processor(audio=clip, sampling_rate=44100)["input_features"]
    at_16k = processor(audio=resampled, sampling_rate=SAMPLING_RATE)["input_features"]
    torch.testing.assert_close(at_44k, at_16k)
    left, right = make_clip(1.0, 1), make_clip(1.0, 2)
    stereo = processor(audio=np.stack([left, right]), sampling_rate=SAMPLING_RATE)["input_features"]
    mono = processor(audio=(left + right) / 2, sampling_rate=SAMPLING_RATE)["input_features"]
    torch.testing.assert_close(stereo, mono)
    channels_last = processor(audio=np.stack([left, right], axis=1), sampling_rate=SAMPLING_RATE)["input_features"]
    torch.testing.assert_close(channels_last, mono)


def test_reads_files_and_dicts(tiny, wav_file):
    _, processor = tiny
    from_file = processor(audio=str(wav_file))["input_features"]
    waveform, rate = librosa.load(wav_file, sr=None)
    from_dict = processor(audio={"array": waveform, "sampling_rate": rate})["input_features"]
    torch.testing.assert_close(from_file, from_dict, atol=1e-4, rtol=1e-4)
    assert processor(audio=str(wav_file))["input_features_mask"].sum() == pytest.approx(2.0 * 100, abs=2)


def test_post_process_splits_on_tag_pair(tiny):
    _, processor = tiny
    tokenizer = processor.tokenizer
    texts = ["the train<|eng|><|deu|>der zug", "hello<|eng|><|fra|>bonjour", "no pair here"]
    ids = tokenizer(texts, add_special_tokens=False, padding=True)["input_ids"]
    results = processor.post_process_speech_translation(ids, "srt", "eng", ["deu", "fra", "deu"])
    assert results[0] == {"transcription": "the train", "translation": "der zug"}
    assert results[1] == {"transcription": "hello", "translation": "bonjour"}
    assert results[2] == {"transcription": "no pair here", "translation": ""}
    assert PROMPTS.split_answer("a<|eng|><|spa|>b", "eng", "deu") == ("a", "b")
    # One tag only (a weakly trained model): split on it, later tags dropped from the translation.
    assert PROMPTS.split_answer("Ich bin da.<|deu|>I am here.<|eng|>Me too.", "deu", "eng") == ("Ich bin da.",
                                                                                       "I am here. Me too.")
    asr = processor.post_process_speech_translation(ids[:1], "asr", "eng")
    assert asr == [{"transcription": "the train<|eng|><|deu|>der zug", "translation": None}]
