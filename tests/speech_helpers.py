"""Shared by the long-audio, CLI and app tests: a tiny model taught one answer, and recordings of utterances
separated by pauses (eSpeak NG speech or helpers.py's speech-like signal)."""

import functools

import numpy as np
import torch
from helpers import CORPUS, SAMPLING_RATE, make_clip

from llmsrt.testing import build_tiny_model_and_processor

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 12, "no_repeat_ngram_size": 0}
ANSWER = {"transcription": "good morning", "translation": "guten morgen"}


def tiny_model_that_answers(steps: int = 40):
    """A tiny random model trained (a few Adam steps, teacher forcing) to answer every eng->deu clip with
    `ANSWER`: its pipeline output has a non-empty translation to look for."""
    model, processor = build_tiny_model_and_processor(CORPUS)
    batch = processor(audio=[make_clip(1.0 + i, seed=i) for i in range(2)], sampling_rate=SAMPLING_RATE,
                      src_lang="eng", tgt_lang="deu", targets=ANSWER)
    trained = [p for name, p in model.named_parameters() if not name.startswith("audio_encoder")]
    optimizer = torch.optim.Adam(trained, lr=1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    return model.eval(), processor


def recording_with_pauses(utterances: list[np.ndarray], pauses: list[float], tail: float = 1.0):
    """`pauses[i]` seconds of silence, then `utterances[i]`, for each i, then `tail` seconds of silence; returns the
    waveform and the true `(start_s, end_s)` of each utterance."""
    pieces, spans, position = [], [], 0
    for utterance, pause in zip(utterances, pauses):
        pieces.append(np.zeros(int(pause * SAMPLING_RATE), dtype=np.float32))
        position += pieces[-1].size
        spans.append((position / SAMPLING_RATE, (position + utterance.size) / SAMPLING_RATE))
        pieces.append(utterance.astype(np.float32))
        position += utterance.size
    pieces.append(np.zeros(int(tail * SAMPLING_RATE), dtype=np.float32))
    return np.concatenate(pieces), spans


SENTENCES = ("Good morning, how are you today?", "The train leaves at nine o'clock.",
             "The sun is hot and the sea is blue.", "Please close the window before you go.",
             "My brother works in a small bakery.", "We will meet again next Tuesday evening.")


@functools.cache
def _espeak():
    from llmsrt.demo.speech_synthesis import ESpeak

    return ESpeak()


def spoken(text: str, voice: str = "en-us", sampling_rate: int = SAMPLING_RATE, rate: int = 175) -> np.ndarray:
    """eSpeak NG speech, mono float32 at `sampling_rate` (`rate`: words per minute): what Silero VAD takes for
    speech (make_clip's signal it does not)."""
    return _espeak().synthesize(text, voice, rate=rate, sampling_rate=sampling_rate)


def spoken_utterances(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` English sentences spoken by eSpeak NG (16 kHz), at speaking rates drawn from `seed`: speech that a
    speech detector (Silero VAD) recognises, unlike `make_clip`'s harmonics."""
    rng = np.random.default_rng(seed)
    return [spoken(SENTENCES[(seed + i) % len(SENTENCES)], rate=int(rng.integers(150, 190))) for i in range(count)]


TALK_SENTENCES = (("en-us", "Good morning, how are you today?"), ("de", "Der Zug fährt um neun Uhr ab."),
                  ("fr", "Le soleil est chaud et la mer est bleue."), ("es", "El tren sale a las nueve."))


def spoken_talk(seed: int = 0, seconds: float = 95.0):
    """`seconds` of eSpeak NG sentences (4 languages' voices) separated by 0.8-1.6 s pauses drawn from `seed`:
    (waveform at 16 kHz, the sentences' (start, end) spans in seconds) as `recording_with_pauses` gives them."""
    rng = np.random.default_rng(seed)
    utterances, pauses, total = [], [], 0.0
    while True:
        voice, text = TALK_SENTENCES[len(utterances) % len(TALK_SENTENCES)]
        utterance = _espeak().synthesize(text, voice, rate=160 + 10 * (len(utterances) % 3))
        pause = float(rng.uniform(0.8, 1.6))
        if total + pause + utterance.size / SAMPLING_RATE > seconds - 1.0:
            break
        utterances.append(utterance)
        pauses.append(pause)
        total += pause + utterance.size / SAMPLING_RATE
    return recording_with_pauses(utterances, pauses, tail=seconds - total)
