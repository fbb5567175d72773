"""Recordings longer than the encoder window: pause-based segments, timestamps, subtitles, the CLI, bad files."""

import json

import librosa
import numpy as np
import pytest
import soundfile as sf
import srt
import torch
import webvtt
from helpers import SAMPLING_RATE, make_clip
from speech_helpers import (
    ANSWER,
    GREEDY,
    recording_with_pauses,
    spoken_talk,
    spoken_utterances,
    tiny_model_that_answers,
)
from transformers import pipeline

from llmsrt.audio_utils import stream_audio
from llmsrt.inference.translate import main as translate_main
from llmsrt.segmentation import split_on_pauses

TOLERANCE = 0.5  # seconds between a segment boundary and the true pause


@pytest.fixture(scope="module")
def translator(one_thread):
    model, processor = tiny_model_that_answers()
    return pipeline("speech-translation", model=model, processor=processor)


@pytest.fixture(scope="module")
def saved_answering_model(translator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("answering-model")
    translator.model.save_pretrained(folder)
    translator.processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def spoken_recording(tmp_path_factory):
    """95 s of eSpeak NG sentences (4 languages' voices) separated by 0.8-1.6 s pauses, as a WAV file."""
    waveform, spans = spoken_talk()
    path = tmp_path_factory.mktemp("talk") / "talk.wav"
    sf.write(path, waveform, SAMPLING_RATE)
    return path, spans


def test_segments_of_a_95_second_recording_fall_on_its_pauses(spoken_recording):
    path, spans = spoken_recording
    assert 94.5 <= sf.info(path).duration <= 95.5
    segments = list(split_on_pauses(stream_audio(str(path), block_seconds=7.0), SAMPLING_RATE, max_seconds=30.0))
    assert len(segments) == len(spans)
    for segment, (start, end) in zip(segments, spans):
        assert abs(segment.start - start) <= TOLERANCE and abs(segment.end - end) <= TOLERANCE
        assert segment.audio.size == pytest.approx((segment.end - segment.start) * SAMPLING_RATE, abs=2)
    # Read in 7-s blocks or all at once: the same cuts.
    whole, _ = sf.read(path, dtype="float32")
    at_once = list(split_on_pauses([whole], SAMPLING_RATE, max_seconds=30.0))
    assert [(s.start, s.end) for s in at_once] == [(s.start, s.end) for s in segments]


def test_pipeline_chunks_and_subtitle_cues_match_the_pauses(translator, spoken_recording, tmp_path):
    path, spans = spoken_recording
    # The tiny model's window is 5 s: each sentence is one segment.
    result = translator(str(path), src_lang="eng", tgt_lang="deu", return_timestamps=True, batch_size=4,
                        generate_kwargs=GREEDY)
    chunks = result["chunks"]
    assert len(chunks) == len(spans)
    for chunk, (start, end) in zip(chunks, spans):
        assert abs(chunk["timestamp"][0] - start) <= TOLERANCE and abs(chunk["timestamp"][1] - end) <= TOLERANCE
        assert (chunk["transcription"], chunk["translation"]) == (ANSWER["transcription"], ANSWER["translation"])
    assert result["translation"] == " ".join([ANSWER["translation"]] * len(spans))
    assert (result["src_lang"], result["tgt_lang"]) == ("eng", "deu")

    from llmsrt.inference.subtitles import write_subtitles

    cues = list(srt.parse(write_subtitles(chunks, tmp_path / "talk.srt", "translation").read_text()))
    assert [cue.content for cue in cues] == [ANSWER["translation"]] * len(spans)
    for cue, (start, end) in zip(cues, spans):
        assert abs(cue.start.total_seconds() - start) <= TOLERANCE and abs(cue.end.total_seconds() - end) <= TOLERANCE


def test_speech_without_pauses_is_cut_within_the_window_and_translated(translator):
    # About 12 s of speech without a pause (sentences joined edge to edge), a 5-s window: cut at the least
    # speech-like points, nothing lost.
    speech = np.concatenate([librosa.effects.trim(utterance, top_db=40)[0] for utterance in spoken_utterances(6)])
    result = translator({"array": speech, "sampling_rate": SAMPLING_RATE}, src_lang="eng", tgt_lang="deu",
                        return_timestamps=True, generate_kwargs=GREEDY)
    stamps = [chunk["timestamp"] for chunk in result["chunks"]]
    assert len(stamps) >= 3 and all(end - start <= 5.0 + 1e-6 for start, end in stamps)
    assert stamps[0][0] == 0.0 and stamps[-1][1] == pytest.approx(speech.size / SAMPLING_RATE, abs=0.03)
    assert all(a[1] == b[0] for a, b in zip(stamps, stamps[1:]))  # contiguous cuts
    assert all(chunk["translation"] == ANSWER["translation"] for chunk in result["chunks"])
    # Longer than the window without return_timestamps: the joined texts, no chunks.
    joined = translator({"array": speech, "sampling_rate": SAMPLING_RATE}, src_lang="eng", tgt_lang="deu",
                        generate_kwargs=GREEDY)
    assert "chunks" not in joined and joined["translation"] == result["translation"]


def test_silence_only_and_corrupt_recordings(translator, tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(12 * SAMPLING_RATE, dtype=np.float32), SAMPLING_RATE)
    result = translator(str(silence), src_lang="eng", tgt_lang="deu", return_timestamps=True)
    assert result == {"transcription": "", "translation": "", "src_lang": "eng", "tgt_lang": "deu", "chunks": [],
                      "no_speech": True}
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 100)
    with pytest.raises(ValueError, match="corrupt.wav"):
        translator(str(corrupt), src_lang="eng", tgt_lang="deu", return_timestamps=True)
    with pytest.raises(ValueError, match="corrupt.wav"):
        translator(str(corrupt), src_lang="eng", tgt_lang="deu")
    nan = np.full(8 * SAMPLING_RATE, np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        translator({"array": nan, "sampling_rate": SAMPLING_RATE}, src_lang="eng", tgt_lang="deu")


def test_without_a_language_id_head_auto_and_no_src_lang_are_errors(translator):
    clip = {"array": make_clip(2.0, 1), "sampling_rate": SAMPLING_RATE}
    with pytest.raises(ValueError, match="src_lang='auto'.*src_lang='eng'"):
        translator(clip, src_lang="auto", tgt_lang="deu")
    with pytest.raises(ValueError, match="No src_lang.*cannot detect the spoken language"):
        translator(clip, tgt_lang="deu")


def test_cli_writes_srt_and_vtt_per_track_and_reports_bad_files(saved_answering_model, tmp_path, capsys):
    waveform, spans = recording_with_pauses(spoken_utterances(4, seed=9), [0.6, 1.2, 0.9, 1.5])
    talk = tmp_path / "in" / "talk.wav"
    talk.parent.mkdir()
    sf.write(talk, np.stack([waveform, waveform], axis=1), 44100 // 2)  # stereo at 22.05 kHz: resampled
    broken = tmp_path / "in" / "broken.flac"
    broken.write_bytes(b"not audio at all")
    common = ["--model", str(saved_answering_model), "--tgt_lang", "deu", "--src_lang", "eng",
              "--num_beams", "1", "--max_new_tokens", "12", "--device", "cpu"]
    out = tmp_path / "out"
    status = translate_main([str(broken), str(talk), *common, "--format", "srt", "--output_dir", str(out)])
    assert status == 1  # one file failed...
    assert "broken.flac" in capsys.readouterr().err
    scale = 22050 / SAMPLING_RATE  # the recording was written at 22.05 kHz with 16-kHz sample counts
    transcript = list(srt.parse((out / "talk.transcript.eng.srt").read_text()))  # ...the other was written
    translation = list(srt.parse((out / "talk.translation.deu.srt").read_text()))
    assert [cue.content for cue in transcript] == [ANSWER["transcription"]] * len(spans)
    assert [cue.content for cue in translation] == [ANSWER["translation"]] * len(spans)
    for cue, (start, end) in zip(translation, spans):
        assert abs(cue.start.total_seconds() - start / scale) <= TOLERANCE
        assert abs(cue.end.total_seconds() - end / scale) <= TOLERANCE

    assert translate_main([str(talk), *common, "--format", "vtt", "--output_dir", str(out)]) == 0
    captions = webvtt.read(str(out / "talk.translation.deu.vtt"))
    assert [c.text for c in captions] == [ANSWER["translation"]] * len(spans)
    for caption, cue in zip(captions, translation):  # the same timestamps as the SRT cues, to the millisecond
        for vtt_time, srt_time in ((caption.start, cue.start), (caption.end, cue.end)):
            hours, minutes, seconds = vtt_time.split(":")
            assert int(hours) * 3600 + int(minutes) * 60 + float(seconds) == pytest.approx(
                srt_time.total_seconds(), abs=0.0015)
    assert translate_main([str(talk), *common, "--format", "json", "--output_dir", str(out)]) == 0
    document = json.loads((out / "talk.translation.deu.json").read_text())
    assert document["language"] == "deu" and len(document["cues"]) == len(spans)


def test_audio_in_a_video_container_decodes_with_pyav(translator, tmp_path):
    av = pytest.importorskip("av", reason="video containers decode through PyAV (the [video] extra)")
    waveform, spans = recording_with_pauses(spoken_utterances(2, seed=3), [0.7, 1.0])
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("aac", rate=SAMPLING_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(waveform[None, :], format="fltp", layout="mono")
        frame.sample_rate = SAMPLING_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    result = translator(str(video), src_lang="eng", tgt_lang="deu", return_timestamps=True, generate_kwargs=GREEDY)
    assert len(result["chunks"]) == len(spans)
    for chunk, (start, end) in zip(result["chunks"], spans):
        assert abs(chunk["timestamp"][0] - start) <= TOLERANCE and abs(chunk["timestamp"][1] - end) <= TOLERANCE


def test_cli_quantizes_for_the_cpu_when_asked(saved_answering_model, tmp_path, monkeypatch):
    from llmsrt.inference import translate

    waveform, spans = recording_with_pauses(spoken_utterances(2, seed=9), [0.6, 1.2])
    talk = tmp_path / "talk.wav"
    sf.write(talk, waveform, SAMPLING_RATE)
    loaded, load = [], translate.load_translator
    monkeypatch.setattr(translate, "load_translator", lambda *args: loaded.append(load(*args)) or loaded[-1])
    common = ["--model", str(saved_answering_model), "--tgt_lang", "deu", "--src_lang", "eng", "--num_beams", "1",
              "--max_new_tokens", "12", "--device", "cpu", "--output_dir", str(tmp_path / "out")]
    assert translate_main([str(talk), *common, "--quantize", "int8"]) == 0
    layers = dict(loaded[0].model.language_model.named_modules())
    assert type(layers["model.layers.0.self_attn.q_proj"]) is torch.ao.nn.quantized.dynamic.Linear
    cues = list(srt.parse((tmp_path / "out" / "talk.translation.deu.srt").read_text()))
    assert len(cues) == len(spans)
