"""Write small corpora in the layouts FLEURS, CoVoST-2 and Common Voice are published in (see
shared/reference/corpora.md), for the loaders' tests and benchmarks/data_throughput.py.

- FLEURS: the Hub's parquet export, `{config}/{split}/0000.parquet, ...` (and `partial-{split}/`), every file with the
  script's `datasets` features in the schema's `huggingface` metadata, as datasets writes it: `audio` a struct of
  WAV `bytes` and `path`, `gender`/`lang_id`/`lang_group_id` ClassLabels (stored as int64).
- Common Voice: `{release}/{locale}/{train,dev,test,validated}.tsv` (the 13 columns of recent releases) beside
  `{locale}/clips/*.mp3`, real MPEG-1 Layer III files at 48 kHz (or 32 kHz) written with libsndfile.
- CoVoST-2: `covost_v2.{src}_{tgt}.tsv` (`path`, `translation`, `split`).

TSVs are written as the reference loaders read them (tab-separated, no quoting, `\\` escapes a backslash, a tab or
a newline; a `"` stays as it is).
Uncertain, not read by the loaders: the export's `path` column (written here like the script's extracted-file path)
and the exact `path` inside the `audio` struct (here the WAV's file name).
"""

import io
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from helpers import make_clip as speech  # noqa: F401  (the fixtures' clips; test_corpora imports it from here)

from llmsrt.languages import LANGUAGES

# The FLEURS script's ClassLabel names: configs sorted, then "all"; the seven language groups in its order.
FLEURS_CONFIGS = sorted({language.fleurs for language in LANGUAGES.values()}) + ["all"]
FLEURS_GROUPS = ["western_european_we", "eastern_european_ee", "central_asia_middle_north_african_cmn",
                 "sub_saharan_african_ssa", "south_asian_sa", "south_east_asian_sea", "chinese_japanase_korean_cjk"]
FLEURS_FEATURES = datasets.Features({
    "id": datasets.Value("int32"),
    "num_samples": datasets.Value("int32"),
    "path": datasets.Value("string"),
    "audio": datasets.Audio(sampling_rate=16_000),
    "transcription": datasets.Value("string"),
    "raw_transcription": datasets.Value("string"),
    "gender": datasets.ClassLabel(names=["male", "female", "other"]),
    "lang_id": datasets.ClassLabel(names=FLEURS_CONFIGS),
    "language": datasets.Value("string"),
    "lang_group_id": datasets.ClassLabel(names=FLEURS_GROUPS),
})
COMMON_VOICE_COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
                        "age", "gender", "accents", "variant", "locale", "segment"]


def wav_bytes(waveform: np.ndarray, sampling_rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_mp3(path: Path, waveform: np.ndarray, sampling_rate: int = 48000) -> Path:
    """A real MPEG-1 Layer III file (libsndfile >= 1.1 encodes MP3 through LAME)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, waveform, sampling_rate, format="MP3", subtype="MPEG_LAYER_III")
    return path


def fleurs_row(config: str, split: str, sentence_id: int, text: str, seed: int, seconds: float = 1.0,
               gender: int = 0) -> dict:
    """One FLEURS utterance (one speaker reading sentence `sentence_id`), as the export stores it."""
    clip = speech(seconds, seed)
    name = f"{10**17 + 7919 * seed}.wav"
    language = next(language for language in LANGUAGES.values() if language.fleurs == config)
    return {
        "id": sentence_id, "num_samples": clip.size,
        "path": f"/root/.cache/huggingface/datasets/downloads/extracted/{seed:064x}/{split}/{name}",
        "audio": {"bytes": wav_bytes(clip), "path": name},
        "transcription": "".join(c for c in text.lower() if c.isalnum() or c == " "),
        "raw_transcription": text, "gender": gender, "lang_id": FLEURS_CONFIGS.index(config),
        "language": language.name, "lang_group_id": 0,
    }


def write_fleurs_export(root: Path, tables: dict[str, dict[str, list[dict]]], rows_per_file: int = 3) -> Path:
    """`tables`: config -> folder (`train`, `validation`, `partial-test`, ...) -> rows; each folder's rows are cut
    into `0000.parquet, 0001.parquet, ...` of `rows_per_file` rows."""
    schema = FLEURS_FEATURES.arrow_schema  # carries the `huggingface` metadata, as datasets' parquet writer does
    for config, folders in tables.items():
        for folder, rows in folders.items():
            (root / config / folder).mkdir(parents=True, exist_ok=True)
            for number, start in enumerate(range(0, len(rows), rows_per_file)):
                table = pa.Table.from_pylist(rows[start : start + rows_per_file], schema=schema)
                pq.write_table(table, root / config / folder / f"{number:04d}.parquet")
    return root


def _tsv_field(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\t", "\\\t").replace("\n", "\\\n")


def write_tsv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """A TSV as published: a header line, then one line per row, no quoting, backslash escapes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)] + ["\t".join(_tsv_field(row.get(name, "")) for name in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def common_voice_row(locale: str, clip: str, sentence: str, index: int) -> dict:
    return {"client_id": f"{index:0128x}", "path": clip, "sentence_id": f"{index:064x}", "sentence": sentence,
            "sentence_domain": "", "up_votes": 2, "down_votes": 0, "age": "thirties", "gender": "female_feminine",
            "accents": "", "variant": "", "locale": locale, "segment": ""}


def write_common_voice_locale(release: Path, locale: str, splits: dict[str, list[dict]],
                              clips: dict[str, bytes | tuple[float, int]]) -> Path:
    """One locale of a release: `splits` = TSV name (`train`, `validated`, ...) -> rows (`common_voice_row`);
    `clips` = file name -> `(seconds, sampling_rate)` of an MP3 to write, or raw bytes (a corrupt clip)."""
    folder = release / locale
    for split, rows in splits.items():
        write_tsv(folder / f"{split}.tsv", COMMON_VOICE_COLUMNS, rows)
    for seed, (name, clip) in enumerate(sorted(clips.items())):
        if isinstance(clip, bytes):
            (folder / "clips").mkdir(parents=True, exist_ok=True)
            (folder / "clips" / name).write_bytes(clip)
        else:
            seconds, rate = clip
            write_mp3(folder / "clips" / name, speech(seconds, 100 + seed, rate), rate)
    return folder


def write_covost_tsv(folder: Path, src: str, tgt: str, rows: list[dict]) -> Path:
    """`covost_v2.{src}_{tgt}.tsv`: rows of `path`, `translation`, `split`."""
    return write_tsv(folder / f"covost_v2.{src}_{tgt}.tsv", ["path", "translation", "split"], rows)


def fleurs_sentence(code: str, sentence_id: int) -> str:
    """The text of sentence `sentence_id` in language `code` in `write_fleurs70`'s export."""
    language = next(language for language in LANGUAGES.values() if language.code == code)
    return f"{language.name} sentence {sentence_id}."


def write_fleurs70(root: Path, codes: list[str], sentence_ids=(1, 2), missing: dict | None = None) -> Path:
    """A FLEURS export of the `test` split with `sentence_ids` read once each in every language of `codes` (registry
    codes), under each language's config; `missing` maps a language to sentence ids it lacks."""
    tables = {}
    for number, code in enumerate(codes):
        config = LANGUAGES[code].fleurs
        ids = [i for i in sentence_ids if i not in (missing or {}).get(code, ())]
        tables[config] = {"test": [fleurs_row(config, "test", i, fleurs_sentence(code, i), 100 * number + i,
                                              seconds=0.2) for i in ids]}
    return write_fleurs_export(root, tables)
