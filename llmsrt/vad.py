"""Speech detection: which short frames of a 16-kHz stream hold speech.

Two detectors share one interface (`frame_samples`, `classify(frames)`, `reset()`), stateful across calls so that
a stream can be fed in blocks of any size with the same result as all at once:

- `SileroDetector` (the default): Silero VAD, the model faster-whisper and WhisperX use, from the `silero-vad` wheel
  (its TorchScript file ships in the wheel: nothing is downloaded). A 32-ms frame is speech when its probability
  reaches `threshold`, and stays speech down to `threshold - 0.15` (Silero's own hysteresis). Noise, music, hum and
  clicks score low, so they give no text. Frames below `gate_db` (digital silence) are not sent to the model.
- `EnergyDetector`: the earlier RMS-level rule (a 20-ms frame is speech when it is above `floor_db` and within
  `top_db` of the loudest frame so far). Any loud sound counts as speech: kept as a fallback without `silero-vad`
  and for the measurements in `benchmarks/speech_detection.py`.

Without `silero-vad` installed (remote code run with torch, transformers and librosa only), `"silero"` falls back
to the energy rule with a warning in the log. `speech_regions` and `has_speech` run a detector over a whole clip.
Cutting a recording at the detected pauses is `segmentation.py`'s job.
"""

import logging
import threading
import warnings

import numpy as np

DETECTORS = ("silero", "energy")
logger = logging.getLogger(__name__)


class EnergyDetector:
    """RMS level rule over 20-ms frames (as `librosa.effects.split`, with a running reference). The score of a
    frame is its level in dB full scale."""

    def __init__(self, sampling_rate: int = 16000, top_db: float = 40.0, floor_db: float = -55.0,
                 frame_seconds: float = 0.02):
        self.sampling_rate = sampling_rate
        self.frame_samples = int(round(frame_seconds * sampling_rate))
        self.top_db, self.floor_db = top_db, floor_db
        self.reset()

    def reset(self) -> None:
        self.peak_db = -np.inf

    def classify(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`frames` `(n, frame_samples)` -> `(is_speech (n,) bool, score (n,) float)`."""
        rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
        db = 20 * np.log10(np.maximum(rms, 1e-10))
        if not db.size:
            return np.zeros(0, dtype=bool), db
        running_peak = np.maximum.accumulate(np.maximum(db, self.peak_db))
        self.peak_db = float(running_peak[-1])
        return (db > self.floor_db) & (db > running_peak - self.top_db), db


_SILERO_LOCK = threading.Lock()


def load_silero_model():
    """A fresh Silero VAD TorchScript model from the `silero-vad` wheel (each stream needs its own: the model keeps
    state). Raises `ImportError` naming the package when it is missing."""
    import torch

    threads = torch.get_num_threads()
    try:  # inside `try`: transformers' check of remote code does not demand silero-vad of a saved folder's users
        from silero_vad import load_silero_vad  # importing it sets torch to one thread: restored below
    except ImportError as error:
        raise ImportError(
            "Speech detection with Silero VAD needs the silero-vad package: `pip install silero-vad` (a dependency "
            "of llmsrt), or choose detector='energy' (an energy threshold: noise and music count as speech)."
        ) from error
    finally:
        torch.set_num_threads(threads)
    with _SILERO_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # importlib.resources.path, torch.jit.load
        return load_silero_vad()


class SileroDetector:
    """Silero VAD over 32-ms frames (512 samples at 16 kHz). The score of a frame is its speech probability."""

    def __init__(self, sampling_rate: int = 16000, threshold: float = 0.5, gate_db: float = -70.0, model=None):
        if sampling_rate != 16000:
            raise ValueError(f"Silero VAD runs on 16-kHz audio here, got sampling_rate={sampling_rate}.")
        self.sampling_rate = sampling_rate
        self.frame_samples = 512
        self.threshold, self.gate_db = threshold, gate_db
        self.model = model if model is not None else load_silero_model()
        self.reset()

    def reset(self) -> None:
        self.model.reset_states()
        self.speaking = False

    def classify(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`frames` `(n, 512)` -> `(is_speech (n,) bool, probability (n,) float)`."""
        import torch

        probabilities = np.zeros(len(frames), dtype=np.float64)
        rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)) if len(frames) else np.zeros(0)
        audible = 20 * np.log10(np.maximum(rms, 1e-10)) > self.gate_db
        with torch.inference_mode():
            for i in np.flatnonzero(audible):
                probabilities[i] = self.model(torch.from_numpy(np.ascontiguousarray(frames[i], np.float32)),
                                              self.sampling_rate).item()
        speech = np.zeros(len(frames), dtype=bool)
        for i, probability in enumerate(probabilities):
            self.speaking = probability >= self.threshold or (self.speaking and probability >= self.threshold - 0.15)
            speech[i] = self.speaking
        return speech, probabilities


def make_detector(name: str = "silero", sampling_rate: int = 16000, silero_options: dict | None = None,
                  energy_options: dict | None = None):
    """A new detector by name (`"silero"` or `"energy"`) with its options.

    Where `silero-vad` is not installed (a saved folder's remote code run with torch, transformers and librosa only),
    `"silero"` falls back to the energy rule and says so once in the log: the pipeline keeps working, but noise and
    music may then become text."""
    if name not in DETECTORS:
        raise ValueError(f"Unknown speech detector {name!r}. Accepted: {', '.join(DETECTORS)}.")
    if name == "silero":
        try:
            return SileroDetector(sampling_rate, **(silero_options or {}))
        except ImportError as error:
            if not _WARNED:
                _WARNED.append(True)
                logger.warning("%s Using the energy rule instead.", error)
    return EnergyDetector(sampling_rate, **(energy_options or {}))


_WARNED: list = []


_SHARED_SILERO: list = []  # one model for whole-clip calls, used under `_SHARED_LOCK`
_SHARED_LOCK = threading.Lock()


def speech_regions(waveform: np.ndarray, sampling_rate: int = 16000, detector: str = "silero",
                   min_speech: float = 0.1, min_pause: float = 0.1) -> list[tuple[float, float]]:
    """`(start_s, end_s)` of the speech in a whole mono clip at `sampling_rate` (16 kHz for Silero): runs of speech
    frames, joined across pauses shorter than `min_pause`, kept when at least `min_speech` long. Thread-safe (Silero:
    one shared model, used under a lock)."""
    samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
    with _SHARED_LOCK:
        if detector == "silero" and not _SHARED_SILERO:
            _SHARED_SILERO.append(make_detector("silero", sampling_rate))
        found = _SHARED_SILERO[0] if detector == "silero" else make_detector(detector, sampling_rate)
        found.reset()
        step = found.frame_samples
        samples = np.concatenate([samples, np.zeros(-samples.size % step, dtype=np.float32)])
        speech, _ = found.classify(samples.reshape(-1, step))
    seconds = step / sampling_rate
    regions: list[list[float]] = []
    for index in np.flatnonzero(speech):
        start = index * seconds
        if regions and start - regions[-1][1] < min_pause:
            regions[-1][1] = start + seconds
        else:
            regions.append([start, start + seconds])
    return [(start, end) for start, end in regions if end - start >= min_speech]


def has_speech(waveform: np.ndarray, sampling_rate: int = 16000, detector: str = "silero",
               min_speech: float = 0.1) -> bool:
    """Whether a clip holds at least `min_speech` seconds of speech."""
    return bool(speech_regions(waveform, sampling_rate, detector, min_speech))


__all__ = ["DETECTORS", "EnergyDetector", "SileroDetector", "has_speech", "load_silero_model", "make_detector",
           "speech_regions"]
