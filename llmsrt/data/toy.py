"""A tiny, memorisable speech translation set for smoke tests: tone-coded "speech" of short parallel phrases."""

from pathlib import Path

import numpy as np
import soundfile

from .manifest import write_manifest
from .schema import SAMPLING_RATE

PHRASES = {
    "eng": ["good morning", "thank you", "the train is late", "where is the station",
            "i like tea", "see you tomorrow", "the sun is warm", "open the door"],
    "deu": ["guten morgen", "danke schön", "der zug ist spät", "wo ist der bahnhof",
            "ich mag tee", "bis morgen", "die sonne ist warm", "öffne die tür"],
    "fra": ["bonjour", "merci", "le train est en retard", "où est la gare",
            "j'aime le thé", "à demain", "le soleil est chaud", "ouvre la porte"],
}
_TIMBRE = {"eng": (1.0, 0.5, 0.2), "deu": (1.0, 0.2, 0.6), "fra": (1.0, 0.7, 0.1)}
CHAR_SECONDS = 0.06


def tone_speech(text: str, language: str) -> np.ndarray:
    """One tone per character, its pitch given by the character and its timbre by the language."""
    t = np.arange(int(CHAR_SECONDS * SAMPLING_RATE)) / SAMPLING_RATE
    envelope = np.hanning(t.size)
    pieces = []
    for char in text:
        frequency = 180.0 + 23.0 * (ord(char) % 47)
        wave = sum(w * np.sin(2 * np.pi * frequency * (k + 1) * t) for k, w in enumerate(_TIMBRE[language]))
        pieces.append(envelope * wave)
    audio = np.concatenate(pieces)
    return (0.4 * audio / np.abs(audio).max()).astype(np.float32)


def toy_texts() -> list[str]:
    return [phrase for phrases in PHRASES.values() for phrase in phrases]


def build_toy_corpus(out_dir: str | Path) -> Path:
    """Write WAV files and `train.jsonl` (every phrase in every language, paired with the next language's
    translation). Returns the manifest path. Rebuilding an existing corpus is a no-op."""
    out_dir = Path(out_dir)
    manifest = out_dir / "train.jsonl"
    if manifest.exists():
        return manifest
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    languages = list(PHRASES)
    rows = []
    for lang_index, language in enumerate(languages):
        target = languages[(lang_index + 1) % len(languages)]
        for index, phrase in enumerate(PHRASES[language]):
            name = f"audio/{language}-{index}.wav"
            soundfile.write(out_dir / name, tone_speech(phrase, language), SAMPLING_RATE)
            rows.append({"id": f"{language}-{index}", "audio": name, "src_lang": language, "transcript": phrase,
                         "tgt_lang": target, "translation": PHRASES[target][index]})
    return write_manifest(manifest, rows)
