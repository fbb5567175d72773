"""Speech from text with eSpeak NG, through the library and voice data that the `espeakng-loader` wheel ships
(no system package needed). Returns 16 kHz mono float32, for building synthetic speech corpora, and on request
when each word is spoken (eSpeak's word events, with the silence after a word trimmed)."""

import ctypes
import threading
from pathlib import Path

import librosa
import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_PITCH = 1, 3
ESPEAK_EVENT_LIST_TERMINATED, ESPEAK_EVENT_WORD = 0, 1
SILENCE_TOP_DB = 35  # a 10-ms frame this far below the clip's loudest is silence (trimmed off a word's end)


class _Event(ctypes.Structure):
    """eSpeak NG's `espeak_EVENT` (speak_lib.h)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.POINTER(_Event))


def word_spans(events: list[tuple[int, int, int]], waveform: np.ndarray, sampling_rate: int
               ) -> list[tuple[int, int, float, float]]:
    """eSpeak word events -> `(first_char, end_char, start_s, end_s)` per spoken word, in text order.

    Args:
        events: `(text_position, length, audio_position_ms)` of each word event (1-based positions, as eSpeak
            gives them). Events over overlapping characters (a number spoken as several words) become one word.
        waveform: the whole clip, to end each word where its sound ends rather than where the next word starts.
    """
    words = []
    for position, length, milliseconds in sorted(events, key=lambda event: event[2]):
        first, end, start = position - 1, position - 1 + max(length, 1), milliseconds / 1000
        if words and first < words[-1][1]:
            words[-1][1] = max(words[-1][1], end)
        else:
            words.append([first, end, start])
    hop = sampling_rate // 100
    loudness = librosa.amplitude_to_db(librosa.feature.rms(y=waveform, frame_length=2 * hop, hop_length=hop)[0],
                                       ref=np.max)
    sounding = np.flatnonzero(loudness > -SILENCE_TOP_DB)
    spans = []
    for index, (first, end, start) in enumerate(words):
        limit = words[index + 1][2] if index + 1 < len(words) else len(waveform) / sampling_rate
        frames = sounding[(sounding * hop >= start * sampling_rate) & (sounding * hop < limit * sampling_rate)]
        stop = min(limit, (frames[-1] + 1) * hop / sampling_rate) if len(frames) else limit
        spans.append((first, end, round(start, 3), round(float(max(stop, start + 0.01)), 3)))
    return spans


class ESpeak:
    """One eSpeak NG engine (the library is not thread-safe: calls are serialised)."""

    _lock = threading.Lock()

    def __init__(self):
        import espeakng_loader

        self.library = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self.sampling_rate = self.library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sampling_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise (is the espeakng-loader voice data present?).")
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []

        def collect(samples, count, events):
            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            index = 0
            while events and events[index].type != ESPEAK_EVENT_LIST_TERMINATED:
                event = events[index]
                if event.type == ESPEAK_EVENT_WORD:
                    self._words.append((event.text_position, event.length, event.audio_position))
                index += 1
            return 0

        self._callback = _SYNTH_CALLBACK(collect)  # keep a reference: eSpeak calls it later
        self.library.espeak_SetSynthCallback(self._callback)
        # eSpeak falls back silently on an unknown voice name: know the real ones from the voice data.
        data = Path(espeakng_loader.get_data_path())
        self.voices = {path.name.lower() for folder in ("lang", "voices") for path in (data / folder).rglob("*")
                       if path.is_file()}

    def synthesize(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
                   sampling_rate: int = 16000) -> np.ndarray:
        """Speak `text` with `voice` (e.g. "en-us", "de", "cmn-latn-pinyin"), `rate` in words per minute and
        `pitch` 0-100; returns mono float32 at `sampling_rate`."""
        return self._synthesize_with_events(text, voice, rate, pitch, sampling_rate)[0]

    def synthesize_with_word_times(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
                                   sampling_rate: int = 16000) -> tuple[np.ndarray, list[tuple]]:
        """`synthesize`, and when each word of `text` is spoken: `(first_char, end_char, start_s, end_s)` per
        word (character offsets into `text`; see `word_spans`)."""
        waveform, events = self._synthesize_with_events(text, voice, rate, pitch, sampling_rate)
        return waveform, word_spans(events, waveform, sampling_rate)

    def _synthesize_with_events(
        self, text: str, voice: str, rate: int, pitch: int, sampling_rate: int
    ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """The waveform at `sampling_rate` and eSpeak's word events, `(text_position, length, audio_position_ms)`."""
        base, _, variant = voice.lower().partition("+")  # "en-us+f2": a voice and a variant (f1-f5, m1-m8...)
        if base not in self.voices or (variant and variant not in self.voices):
            raise ValueError(f"eSpeak NG has no voice {voice!r}; e.g. en-us, de, fr, es, cmn-latn-pinyin "
                             f"({len(self.voices)} voices in all).")
        with self._lock:
            if self.library.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG could not select voice {voice!r}.")
            self.library.espeak_SetParameter(ESPEAK_RATE, rate, 0)
            self.library.espeak_SetParameter(ESPEAK_PITCH, pitch, 0)
            self._chunks, self._words = [], []
            encoded = text.encode("utf-8")
            self.library.espeak_Synth(ctypes.c_char_p(encoded), len(encoded) + 1, 0, 0, 0, ESPEAK_CHARS_UTF8,
                                      None, None)
            self.library.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
            events, self._words = self._words, []
        if not chunks:
            raise ValueError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}.")
        waveform = np.concatenate(chunks).astype(np.float32) / 32768.0
        return librosa.resample(waveform, orig_sr=self.sampling_rate, target_sr=sampling_rate), events
