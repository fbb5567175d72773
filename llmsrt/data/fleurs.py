"""FLEURS through the Hub's parquet export (`google/fleurs` itself is a loading script, which `datasets` >= 4
refuses): `{config}/{split}/0000.parquet, ...` on the `refs/convert/parquet` branch (`~parquet` in `hf://` paths),
or a local copy in the same layout; an export that was cut short lies in `partial-{split}/`.

Columns (the script's features, kept in the parquet's `huggingface` schema metadata): `id` (the FLoRes sentence id,
the same in every language and repeated within one, a row per speaker), `num_samples`, `path`, `audio` (struct of WAV
`bytes` and `path`), `transcription` (normalised), `raw_transcription` (as written: what the authors train on),
`gender`, `lang_id`, `language`, `lang_group_id`.
"""

import logging
import os
from pathlib import Path

import datasets
import fsspec
import pyarrow.parquet as pq

from ..languages import get_language
from .schema import STORAGE_FEATURES, audio_feature, standardize, undecoded

logger = logging.getLogger(__name__)

FLEURS_HUB_ID = "google/fleurs"
SPLITS = ("train", "validation", "test")


def export_root(path: str | os.PathLike | None = None) -> str:
    """Where the export lies: a local folder or an `hf://` URL as given, or a Hub id's parquet branch
    (`"google/fleurs"` -> `"hf://datasets/google/fleurs@~parquet"`)."""
    path = str(path or FLEURS_HUB_ID)
    if "://" in path or os.path.isdir(path):
        return path
    looks_local = os.path.isabs(path) or path.startswith(".") or path.count("/") != 1 or os.path.exists(path)
    if looks_local:
        raise ValueError(f"FLEURS folder not found: {path} (pass a folder in the parquet export's layout, "
                         "CONFIG/SPLIT/*.parquet, or a Hub id such as google/fleurs).")
    return f"hf://datasets/{path}@~parquet"


def parquet_files(root: str, config: str, split: str) -> list[str]:
    """The parquet files of one config and split under `root`; `partial-{split}/` (with a warning) when the
    export of that split was cut short."""
    if split not in SPLITS:
        raise ValueError(f"FLEURS has the splits {', '.join(SPLITS)}; got {split!r}.")
    filesystem, base = fsspec.core.url_to_fs(root)
    for folder in (split, f"partial-{split}"):
        files = sorted(filesystem.glob(f"{base}/{config}/{folder}/*.parquet"))
        if files:
            if folder != split:
                logger.warning("FLEURS %s/%s: only a partial export (%s/%s/) exists; training reads those %d "
                               "file(s), not the whole split.", config, split, config, folder, len(files))
            return [filesystem.unstrip_protocol(file) if "://" in root else file for file in files]
    configs = sorted(Path(entry).name for entry in filesystem.ls(base, detail=False)) if filesystem.isdir(base) else []
    raise ValueError(f"No FLEURS parquet files for {config}/{split} under {root} "
                     f"(looked for {config}/{split}/*.parquet and {config}/partial-{split}/*.parquet); "
                     f"configs there: {', '.join(configs) or 'none'}.")


def sentence_texts(files: list[str]) -> dict[int, str]:
    """Sentence id -> `raw_transcription`, reading only those two columns of `files` (not the audio)."""
    texts: dict[int, str] = {}
    for file in files:
        with fsspec.open(file, "rb") as handle:
            table = pq.read_table(handle, columns=["id", "raw_transcription"])
        for sentence_id, text in zip(table["id"].to_pylist(), table["raw_transcription"].to_pylist()):
            texts.setdefault(sentence_id, text)  # every speaker of a sentence reads the same text
    return texts


def load_fleurs(src_lang: str, tgt_lang: str | None = None, split: str = "train",
                path: str | os.PathLike | None = None, streaming: bool = False):
    """FLEURS utterances of `src_lang`; with `tgt_lang`, X->Y pairs joined on the FLEURS sentence `id`.

    The transcript is the source utterance's `raw_transcription`; the translation is the `raw_transcription` of the
    same sentence `id` in the target language (whose audio is not read). Every speaker's recording of a sentence is
    an example; utterances whose sentence has no target counterpart are left out.

    Args:
        path: a local copy of the export, an `hf://` URL of it, or a Hub id (default: google/fleurs).
    """
    source = get_language(src_lang)
    root = export_root(path)
    files = parquet_files(root, source.fleurs, split)
    target = get_language(tgt_lang) if tgt_lang else None
    translations = sentence_texts(parquet_files(root, target.fleurs, split)) if target else None
    utterances = undecoded(datasets.load_dataset("parquet", data_files={split: files}, split=split,
                                                 streaming=streaming))
    constants = {"src_lang": source.code, "tgt_lang": target.code if target else None}
    columns = {"audio": "audio", "id": "id", "transcript": "raw_transcription"}
    if streaming:
        if translations is not None:
            utterances = utterances.filter(lambda sentence_id: sentence_id in translations, input_columns=["id"])
            utterances = utterances.map(lambda sentence_id: {"translation": translations[sentence_id]},
                                        input_columns=["id"])
            columns["translation"] = "translation"
        return standardize(utterances, columns, constants if translations is not None else
                           {**constants, "translation": None})
    return _schema_columns(utterances, translations, constants)


def _schema_columns(utterances: datasets.Dataset, translations: dict[int, str] | None, constants: dict):
    """The example schema by column operations only: the audio is not copied (one mapped parquet cache per
    language, however many directions read it)."""
    utterances = utterances.select_columns(["audio", "id", "raw_transcription"])
    sentence_ids = list(utterances["id"])
    rows = len(sentence_ids)
    texts = [translations.get(sentence_id) for sentence_id in sentence_ids] if translations is not None else None
    utterances = utterances.remove_columns("id").rename_column("raw_transcription", "transcript")
    added = {"id": [str(sentence_id) for sentence_id in sentence_ids],
             **{name: [value] * rows for name, value in constants.items()},
             "translation": texts or [None] * rows}
    for name, values in added.items():  # typed as added: a cast of a plain column would rewrite the audio
        utterances = utterances.add_column(name, values, feature=STORAGE_FEATURES[name])
    utterances = utterances.select_columns(list(STORAGE_FEATURES))
    if texts is not None:
        utterances = utterances.select([row for row, text in enumerate(texts) if text is not None])
    return utterances.cast_column("audio", audio_feature(False))
