"""Live translation (llmsrt/inference/live.py): partial and final captions from a stream of chunks."""

import json
import re
import tracemalloc

import librosa
import numpy as np
import pytest
import soundfile as sf
import srt
from helpers import SAMPLING_RATE
from speech_helpers import recording_with_pauses, spoken_utterances
from transformers import pipeline

from llmsrt.inference.live import LiveEvent, LiveTranslator, agreed_prefix

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6, "no_repeat_ngram_size": 0}
TOLERANCE = 0.35  # seconds between a final's edge and the true pause


@pytest.fixture(scope="module")
def translator(lively, one_thread):
    model, processor = lively  # outputs that depend on the input: texts can be compared
    return pipeline("speech-translation", model=model, processor=processor)


@pytest.fixture(scope="module")
def talk():
    """Four eSpeak sentences after pauses of 0.6-1.5 s, 1 s of silence at the end."""
    return recording_with_pauses(spoken_utterances(4, seed=7), [0.6, 1.2, 0.9, 1.5])


def live(translator, **options) -> LiveTranslator:
    """A session with a partial every chunk, however slow this machine (no `max_real_time_factor`)."""
    options = {"generate_kwargs": GREEDY, "max_real_time_factor": None, **options}
    return LiveTranslator(translator, "eng", "deu", **options)


def in_chunks(waveform: np.ndarray, seed: int, shortest: int = 800, longest: int = 9000):
    rng = np.random.default_rng(seed)
    position = 0
    while position < waveform.size:
        size = int(rng.integers(shortest, longest))
        yield waveform[position : position + size]
        position += size


def finals(events: list[LiveEvent]) -> list[tuple]:
    return [(e.start, e.end, e.transcription, e.translation) for e in events if e.type == "final"]


def test_finals_equal_the_offline_segments_and_come_in_order(translator, talk):
    waveform, spans = talk
    offline = translator({"array": waveform, "sampling_rate": SAMPLING_RATE}, src_lang="eng", tgt_lang="deu",
                         return_timestamps=True, generate_kwargs=GREEDY)["chunks"]
    events = list(live(translator, chunk_seconds=0.5).stream(in_chunks(waveform, seed=1)))
    expected = [(*chunk["timestamp"], chunk["transcription"], chunk["translation"]) for chunk in offline]
    assert finals(events) == expected and len(expected) == len(spans)
    assert len({text for _, _, text, _ in expected}) > 1  # texts that depend on the audio: the comparison means much
    for (start, end, *_), (true_start, true_end) in zip(finals(events), spans):
        assert abs(start - true_start) <= TOLERANCE and abs(end - true_end) <= TOLERANCE
    # Events in the order of the audio: emitted times never go back, a final is emitted after its audio ends, and
    # partials only cover audio after the last final (what is final is never revised).
    assert [e.emitted_at for e in events] == sorted(e.emitted_at for e in events)
    last_final_end = 0.0
    for event in events:
        assert event.start >= last_final_end - 1e-6 and event.end <= event.emitted_at + 1e-6
        if event.type == "final":
            assert event.end > event.start
            last_final_end = event.end
    partials = [e for e in events if e.type == "partial"]
    assert len(partials) >= len(spans)  # each sentence was seen before its pause committed it
    # LocalAgreement-2: a partial's stable text is what it and the previous partial of its stretch agree on.
    pairs = [(a, b) for a, b in zip(partials, partials[1:]) if a.start == b.start]
    assert pairs and all(b.stable_transcription == agreed_prefix(a.transcription, b.transcription) for a, b in pairs)


def test_each_decode_is_drafted_from_the_previous_partial_and_gives_the_same_events(translator, talk, monkeypatch):
    """A partial or final after a partial of the same stretch gets that partial's answer as `answer_draft` (greedy
    decoding; tests/test_decoding.py shows the draft saves forward passes); the events are those without drafts."""
    waveform, _ = talk
    options = {"chunk_seconds": 0.5, "generate_kwargs": GREEDY | {"max_new_tokens": 12}, "max_real_time_factor": None}
    undrafted = list(LiveTranslator(translator, "eng", "deu", drafts=False, **options).stream(in_chunks(waveform, 9)))
    drafts, generate = [], translator.model.generate
    monkeypatch.setattr(translator.model, "generate",
                        lambda *args, **kwargs: drafts.append(kwargs.get("answer_draft")) or generate(*args, **kwargs))
    events = list(LiveTranslator(translator, "eng", "deu", **options).stream(in_chunks(waveform, 9)))
    assert [e.to_dict() | {"wall_seconds": 0} for e in events] == [e.to_dict() | {"wall_seconds": 0} for e in undrafted]
    assert len(drafts) == len(events)  # one decode per event
    builder, tokenizer = translator.processor.prompt_builder, translator.processor.tokenizer
    for previous, event, draft in zip([None, *events], events, drafts):
        if previous is None or previous.type != "partial" or previous.start != event.start:
            assert draft is None
        else:
            answer = previous.transcription  # cut short (12 tokens) before the translation: its beginning
            if previous.translation:
                answer = builder.answer("srt", "eng", "deu", previous.transcription, previous.translation)
            assert draft.tolist() == tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert sum(draft is not None for draft in drafts) >= len([e for e in events if e.type == "final"])


def test_without_max_new_tokens_a_decode_is_bounded_by_its_audio(translator, talk, monkeypatch):
    waveform, _ = talk
    limits, generate = [], translator.model.generate
    monkeypatch.setattr(translator.model, "generate",
                        lambda *args, **kwargs: limits.append(kwargs["max_new_tokens"]) or generate(*args, **kwargs))
    unbounded = {key: value for key, value in GREEDY.items() if key != "max_new_tokens"}
    events = list(live(translator, generate_kwargs=unbounded).stream(in_chunks(waveform, 10)))
    assert len(limits) == len(events) > 4
    assert limits == [int(16 + 16 * (event.end - event.start)) for event in events]
    assert max(limits) < translator.model.generation_config.max_new_tokens


def test_a_machine_too_slow_for_partials_gets_fewer_partials_and_the_same_finals(translator, talk):
    """`max_real_time_factor`: a partial only while decoding has taken less than that share of the audio received.
    A limit no decode can meet leaves the first partial (nothing decoded yet) and every final."""
    waveform, spans = talk
    unlimited = list(live(translator, chunk_seconds=0.5).stream(in_chunks(waveform, seed=1)))
    session = live(translator, chunk_seconds=0.5, max_real_time_factor=1e-9)
    limited = list(session.stream(in_chunks(waveform, seed=1)))
    assert [e.type for e in limited].count("partial") == 1 < [e.type for e in unlimited].count("partial")
    assert finals(limited) == finals(unlimited) and len(finals(limited)) == len(spans)
    assert session.decoding_seconds > 0
    with pytest.raises(ValueError, match="max_real_time_factor=0"):
        live(translator, max_real_time_factor=0)


def test_chunk_sizes_and_input_rates_give_the_same_captions(translator, talk):
    waveform, spans = talk
    small = finals(live(translator, chunk_seconds=0.25).stream(in_chunks(waveform, 2, 200, 1500)))
    large = finals(live(translator, chunk_seconds=2.0, partials=False).stream(in_chunks(waveform, 3, 20000, 40000)))
    assert small == large
    # 48-kHz stereo, as a microphone gives it: resampled and mixed down, the same segments (within a frame).
    stereo = np.stack([librosa.resample(waveform, orig_sr=SAMPLING_RATE, target_sr=48000)] * 2, axis=1)
    session = live(translator, partials=False)
    resampled = finals(session.stream((stereo[i : i + 4800], 48000) for i in range(0, len(stereo), 4800)))
    assert len(resampled) == len(spans)
    for (start, end, *_), (true_start, true_end) in zip(resampled, spans):
        assert abs(start - true_start) <= TOLERANCE and abs(end - true_end) <= TOLERANCE


def test_silence_noise_and_music_give_no_events(translator):
    rng = np.random.default_rng(0)
    t = np.arange(8 * SAMPLING_RATE) / SAMPLING_RATE
    for sound in (np.zeros(t.size), 0.1 * rng.standard_normal(t.size),
                  0.2 * np.sin(2 * np.pi * 330 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)):
        assert list(live(translator).stream(in_chunks(sound.astype(np.float32), seed=4))) == []


def test_bad_chunks_give_an_error_event_and_the_session_goes_on(translator, talk):
    waveform, _ = talk
    clean = finals(live(translator, partials=False).stream(in_chunks(waveform, seed=5)))
    session = live(translator, partials=False)
    bad = [((np.array([0.1, np.nan, 0.2], dtype=np.float32), SAMPLING_RATE), "NaN"),
           ((np.zeros(0, dtype=np.float32), SAMPLING_RATE), "empty"),
           ((np.zeros(1600, dtype=np.float32), "16000"), "sampling_rate='16000'"),
           ((np.zeros(1600, dtype=np.float32), 0), "sampling_rate=0"),
           ((np.zeros((2, 2, 400), dtype=np.float32), SAMPLING_RATE), r"shape \(2, 2, 400\)"),
           ((["a", "b"], SAMPLING_RATE), "not numeric")]
    chunks = list(in_chunks(waveform, seed=5))
    events = []
    for i, chunk in enumerate(chunks):
        if i % 3 == 1 and bad:
            (array, rate), expected = bad.pop(0)
            errors = session.push(array, rate)
            assert [e.type for e in errors] == ["error"]
            assert errors[0].start == pytest.approx(session.received_seconds, abs=1e-3)
            assert re.search(expected, errors[0].message), errors[0].message
            assert "ccepted" in errors[0].message
        events += session.push(chunk, SAMPLING_RATE)
    events += session.finish()
    assert not bad and finals(events) == clean


def test_a_restarted_microphone_starts_a_new_session(translator, talk):
    waveform, _ = talk
    fresh = finals(live(translator, partials=False).stream(in_chunks(waveform, seed=6)))
    session = live(translator, partials=False)
    for chunk in in_chunks(waveform[: waveform.size // 2], seed=7):
        session.push(chunk)
    session.reset()  # stopped mid-sentence, then started again
    assert session.received_seconds == 0
    assert finals(session.stream(in_chunks(waveform, seed=6))) == fresh


def test_speech_without_pauses_is_committed_within_the_latency_bound(translator):
    speech = np.concatenate([librosa.effects.trim(u, top_db=40)[0] for u in spoken_utterances(5, seed=1)])
    events = list(live(translator, chunk_seconds=0.5, max_latency_seconds=2.5).stream(in_chunks(speech, 8, 1000,
                                                                                                4000)))
    done = [e for e in events if e.type == "final"]
    assert len(done) >= 4 and all(e.end - e.start <= 2.5 + 1e-6 for e in done)
    assert done[0].start <= 0.2 and done[-1].end == pytest.approx(speech.size / SAMPLING_RATE, abs=0.1)
    assert all(a.end == pytest.approx(b.start, abs=1e-3) for a, b in zip(done, done[1:]))  # nothing lost
    # Each final is emitted less than the bound plus one chunk after its audio began.
    assert all(e.emitted_at - e.start <= 2.5 + 0.3 for e in done)


def test_an_hour_keeps_memory_bounded_and_timestamps_aligned(translator):
    """60 min of silence with a sentence every 5 min, in 1-s chunks: the buffer never holds more than the open
    segment, Python's allocations do not grow, and the last sentence's final is where the sentence is."""
    sentences = spoken_utterances(2, seed=3)
    session = live(translator, chunk_seconds=1.0)
    silence = np.zeros(SAMPLING_RATE, dtype=np.float32)
    events, spans, peak_buffer, position = [], [], 0, 0.0
    tracemalloc.start()
    try:
        for second in range(3600):
            chunk = silence
            if second % 300 == 150:
                sentence = sentences[len(spans) % 2]
                spans.append((position, position + sentence.size / SAMPLING_RATE))
                chunk = np.concatenate([sentence, np.zeros(-sentence.size % SAMPLING_RATE, dtype=np.float32)])
            events += session.push(chunk)
            position += chunk.size / SAMPLING_RATE
            peak_buffer = max(peak_buffer, session.segmenter.buffer.size)
            if second == 600:
                early = tracemalloc.get_traced_memory()[0]
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    events += session.finish()
    done = [e for e in events if e.type == "final"]
    assert session.received_seconds == pytest.approx(position) and position >= 3600
    assert len(done) == len(spans) == 12
    for event, (start, end) in zip(done, spans):
        assert abs(event.start - start) <= TOLERANCE and abs(event.end - end) <= TOLERANCE
    assert peak_buffer <= 6 * SAMPLING_RATE  # the 5-s window and its context, never the hour
    assert late - early < 2_000_000  # bytes: no per-chunk growth over 50 minutes of audio


def test_events_serialise_and_agreement_is_by_whole_words():
    event = LiveEvent("final", 1.0, 2.5, "good morning", "guten morgen", emitted_at=2.9)
    assert json.loads(json.dumps(event.to_dict()))["translation"] == "guten morgen"
    assert set(event.to_dict()) >= {"type", "start", "end", "transcription", "translation", "emitted_at"}
    assert agreed_prefix("the train leaves at", "the train left at nine") == "the train"
    assert agreed_prefix("", "anything") == ""


@pytest.mark.slow
def test_cli_plays_a_file_and_writes_growing_subtitles_and_events(translator, talk, tmp_path):
    from llmsrt.inference.translate import main

    waveform, spans = talk
    folder = tmp_path / "model"
    translator.model.save_pretrained(folder)
    translator.processor.save_pretrained(folder)
    wav = tmp_path / "talk.wav"
    sf.write(wav, waveform, SAMPLING_RATE)
    out = tmp_path / "out"
    status = main([str(wav), "--live", "--model", str(folder), "--src_lang", "eng", "--tgt_lang", "deu",
                   "--output_dir", str(out), "--speed", "50", "--num_beams", "1", "--max_new_tokens", "6",
                   "--device", "cpu"])
    assert status == 0
    lines = [json.loads(line) for line in (out / "talk.events.jsonl").read_text().splitlines()]
    assert {line["type"] for line in lines} == {"partial", "final"}
    for line in lines:
        assert {"type", "start", "end", "transcription", "translation", "emitted_at"} <= set(line)
    done = [line for line in lines if line["type"] == "final"]
    cues = list(srt.parse((out / "talk.translation.deu.srt").read_text()))
    assert [cue.content for cue in cues] == [line["translation"] for line in done if line["translation"]]
    assert len(done) == len(spans)
    for cue, (start, end) in zip(cues, spans):
        assert abs(cue.start.total_seconds() - start) <= TOLERANCE and abs(cue.end.total_seconds() - end) <= TOLERANCE
