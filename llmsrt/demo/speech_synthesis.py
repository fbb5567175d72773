"""Speech from text with eSpeak NG, through the library and voice data that the `espeakng-loader` wheel ships
(no system package needed). Returns 16 kHz mono float32, for building synthetic speech corpora."""

import ctypes
import threading
from pathlib import Path

import librosa
import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_PITCH = 1, 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class ESpeak:
    """The process's eSpeak NG engine. The library keeps one global state and one synthesis callback, so every
    `ESpeak()` returns the same engine (a second engine would re-initialise the library, and once garbage-collected
    leave it calling a freed callback); the library is not thread-safe: calls are serialised."""

    _lock = threading.Lock()
    _engine: "ESpeak | None" = None

    def __new__(cls):
        with cls._lock:
            if cls._engine is None:
                engine = super().__new__(cls)
                engine._start()
                cls._engine = engine
        return cls._engine

    def _start(self):
        import espeakng_loader

        self.library = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self.sampling_rate = self.library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sampling_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise (is the espeakng-loader voice data present?).")
        self._chunks: list[np.ndarray] = []

        def collect(samples, count, _events):
            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
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
        base, _, variant = voice.lower().partition("+")  # "en-us+f2": a voice and a variant (f1-f5, m1-m8...)
        if base not in self.voices or (variant and variant not in self.voices):
            raise ValueError(f"eSpeak NG has no voice {voice!r}; e.g. en-us, de, fr, es, cmn-latn-pinyin "
                             f"({len(self.voices)} voices in all).")
        with self._lock:
            if self.library.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG could not select voice {voice!r}.")
            self.library.espeak_SetParameter(ESPEAK_RATE, rate, 0)
            self.library.espeak_SetParameter(ESPEAK_PITCH, pitch, 0)
            self._chunks = []
            encoded = text.encode("utf-8")
            self.library.espeak_Synth(ctypes.c_char_p(encoded), len(encoded) + 1, 0, 0, 0, ESPEAK_CHARS_UTF8,
                                      None, None)
            self.library.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            raise ValueError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}.")
        waveform = np.concatenate(chunks).astype(np.float32) / 32768.0
        return librosa.resample(waveform, orig_sr=self.sampling_rate, target_sr=sampling_rate)
