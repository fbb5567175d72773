"""The demo corpus: parallel sentences written for this project, spoken by eSpeak NG, split by sentence.

Each sentence is spoken once per language; training clips use one set of voices, speeds and pitches, and
dev/test clips another, so that test speech is never heard in training. The training split also gets filled
templates (`templates.py`: names, numbers, cities, things chosen per sentence), whose content only the audio
tells; dev and test keep the hand-written sentences only, all unseen in training. Chinese is spoken from pinyin
(eSpeak's `cmn-latn-pinyin` voice) and transcribed in characters. The output is a manifest per split, read by
`llmsrt.data.load_manifest` like any user data (`train.py --dataset manifest --train_manifest OUT/train.jsonl`), and
is cached: a rebuild with the same text and settings is a no-op.
"""

import csv
import hashlib
import json
from pathlib import Path

import soundfile

from ..data.manifest import write_manifest
from ..data.schema import SAMPLING_RATE
from .speech_synthesis import ESpeak
from .templates import fill_templates

SENTENCES = Path(__file__).with_name("sentences.tsv")
VOICES = {"eng": "en-us", "deu": "de", "fra": "fr", "spa": "es", "ita": "it", "por": "pt", "nld": "nl",
          "zho": "cmn-latn-pinyin"}
SPOKEN_COLUMN = {"zho": "zho_pinyin"}  # what the voice reads, where it differs from the written text
# (voice variant, words per minute, pitch 0-100)
TRAIN_STYLES = [("m1", 165, 45), ("f2", 175, 60), ("m3", 150, 35), ("f4", 185, 55), ("m2", 170, 50),
                ("f1", 160, 50), ("m4", 180, 40), ("f3", 155, 65), ("m6", 190, 30)]
HELD_OUT_STYLES = [("m7", 145, 40), ("f5", 195, 70)]
SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
TEMPLATE_SENTENCES = 240  # filled templates added to the training split


def _fraction(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def split_of(sentence_id: str, seed: int = 0) -> str:
    """train / dev / test by sentence (80/10/10), stable for a sentence id and seed."""
    position, edge = _fraction(f"split:{seed}:{sentence_id}"), 0.0
    for split, share in SPLITS.items():
        edge += share
        if position < edge:
            return split
    return "test"


def read_sentences(path: str | Path = SENTENCES) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def style_index(key: str, styles: list[tuple]) -> int:
    """The position in `styles` of the style that speaks the clip of `key` (a sentence id and language): stable for
    a key."""
    return int(_fraction(f"style:{key}") * len(styles))


def _speak(engine: ESpeak, path: Path, text: str, voice: str, rate: int, pitch: int) -> None:
    """Write the clip of `text` to `path`, unless an earlier build did."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, engine.synthesize(text, voice, rate=rate, pitch=pitch), SAMPLING_RATE)


def build_demo_corpus(
    out_dir: str | Path,
    languages: list[str] | None = None,
    sentences_path: str | Path = SENTENCES,
    targets_per_clip: int | None = 1,
    seed: int = 0,
    template_sentences: int = TEMPLATE_SENTENCES,
) -> dict[str, Path]:
    """Synthesize the corpus into `out_dir` and return `{split: manifest path}`.

    Args:
        languages: ISO 639-3 codes among `VOICES` (default: all).
        targets_per_clip: target languages paired with each clip (rotating through the others; `None` = all).
        template_sentences: filled templates added to the training split (`templates.fill_templates`).

    Each clip is spoken once, in one of `TRAIN_STYLES` (voice, speed, pitch) for training, of `HELD_OUT_STYLES` for
    dev and test.
    """
    out_dir = Path(out_dir)
    languages = list(languages or VOICES)
    unknown = [code for code in languages if code not in VOICES]
    if unknown:
        raise ValueError(f"No demo voice for {unknown}; the demo corpus speaks {sorted(VOICES)}.")
    text = Path(sentences_path).read_bytes()
    settings = {"languages": languages, "targets_per_clip": targets_per_clip, "seed": seed,
                "text_sha256": hashlib.sha256(text).hexdigest(), "train_styles": TRAIN_STYLES,
                "held_out_styles": HELD_OUT_STYLES, "template_sentences": template_sentences}
    settings = json.loads(json.dumps(settings))  # as read back from corpus.json (tuples become lists)
    stamp = out_dir / "corpus.json"
    manifests = {split: out_dir / f"{split}.jsonl" for split in SPLITS}
    if stamp.is_file() and json.loads(stamp.read_text()) == settings and all(p.is_file() for p in manifests.values()):
        return manifests
    engine = ESpeak()
    rows = {split: [] for split in SPLITS}
    sentences = [(sentence, split_of(sentence["id"], seed)) for sentence in read_sentences(sentences_path)]
    sentences += [(sentence, "train") for sentence in fill_templates(template_sentences, languages, seed)]
    for sentence, split in sentences:
        styles = TRAIN_STYLES if split == "train" else HELD_OUT_STYLES
        for source in languages:
            variant, rate, pitch = styles[style_index(f"{sentence['id']}:{source}", styles)]
            others = [code for code in languages if code != source]
            count = len(others) if targets_per_clip is None else min(targets_per_clip, len(others))
            name = f"audio/{split}/{sentence['id']}-{source}-{variant}-{rate}-{pitch}.wav"
            voice = f"{VOICES[source]}+{variant}"
            _speak(engine, out_dir / name, sentence[SPOKEN_COLUMN.get(source, source)], voice, rate, pitch)
            start = int(_fraction(f"target:{sentence['id']}:{source}") * len(others))
            for offset in range(count):
                target = others[(start + offset) % len(others)]
                rows[split].append({
                    "id": f"{sentence['id']}-{source}-{target}", "audio": name, "src_lang": source,
                    "transcript": sentence[source], "tgt_lang": target, "translation": sentence[target],
                    "voice": voice,
                })
    for split, path in manifests.items():
        write_manifest(path, rows[split])
    stamp.write_text(json.dumps(settings))
    return manifests
