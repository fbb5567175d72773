"""The one example schema every data source is turned into: audio, id, src_lang, transcript, tgt_lang, translation."""

import datasets

SAMPLING_RATE = 16000
# Whisper's encoder window: the longest clip the model reads (every Whisper checkpoint has the same 30 s).
ENCODER_WINDOW_SECONDS = 30.0
TEXT_COLUMNS = ("id", "src_lang", "transcript", "tgt_lang", "translation")
COLUMNS = ("audio",) + TEXT_COLUMNS
# Audio as stored, undecoded: the layout of `datasets.Audio(decode=False)` values.
AUDIO_STORAGE = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
STORAGE_FEATURES = datasets.Features(
    {"audio": AUDIO_STORAGE, **{name: datasets.Value("string") for name in TEXT_COLUMNS}}
)


def audio_decoding_available() -> bool:
    """Whether `datasets` can decode audio here (it needs a working torchcodec, with FFmpeg and a matching torch).

    Without it the audio stays undecoded (`{"path", "bytes"}`) and `llmsrt.audio_utils.prepare_audio` decodes it
    with librosa, at the same 16 kHz, when a batch is built.
    """
    try:
        from torchcodec.decoders import AudioDecoder  # noqa: F401
    except Exception:  # noqa: BLE001 - missing package or missing shared libraries
        return False
    return True


def audio_feature(streaming: bool):
    """The final `audio` column: `datasets.Audio` at 16 kHz, decoded when torchcodec works.

    Without torchcodec a stream cannot carry `Audio` values at all (datasets encodes every streamed row), so a
    streamed dataset then keeps the plain `{"bytes", "path"}` struct.
    """
    if audio_decoding_available():
        return datasets.Audio(sampling_rate=SAMPLING_RATE)
    return AUDIO_STORAGE if streaming else datasets.Audio(sampling_rate=SAMPLING_RATE, decode=False)


def undecoded(dataset, column: str = "audio"):
    """Keep `column` as stored bytes/paths, so that mapping or filtering rows never decodes (or re-encodes) audio."""
    if column in (dataset.column_names or []) and isinstance(dataset.features[column], datasets.Audio):
        streaming = isinstance(dataset, datasets.IterableDataset)
        return dataset.cast_column(column, AUDIO_STORAGE if streaming else datasets.Audio(decode=False))
    return dataset


def _stored_audio(value) -> dict:
    if isinstance(value, str):
        return {"bytes": None, "path": value}
    return {"bytes": value.get("bytes"), "path": value.get("path")}


def standardize(dataset, columns: dict[str, str], constants: dict[str, str | None] | None = None):
    """Rename source columns to the schema, add constant columns, drop the rest, and set the 16 kHz audio feature.

    Args:
        dataset: a `datasets.Dataset` or `IterableDataset`.
        columns: schema name -> source column name (`"audio"` must be mapped).
        constants: schema name -> value for every row (e.g. the language of a per-language config).
    """
    constants = dict(constants or {})
    streaming = isinstance(dataset, datasets.IterableDataset)
    dataset = undecoded(dataset, columns["audio"])
    if dataset.column_names is None:  # a streamed dataset after `map`: read its first rows to learn the columns
        dataset = dataset._resolve_features()
    available = list(dataset.column_names)
    missing = [source for source in columns.values() if source not in available]
    if missing:
        raise ValueError(f"Dataset lacks column(s) {missing}; it has {available}.")

    def to_schema(row):
        values = {target: row[source] for target, source in columns.items()}
        values.update(constants)
        values["id"] = str(values.get("id") or "")
        values["audio"] = _stored_audio(values["audio"])
        return {name: values.get(name) for name in COLUMNS}

    dataset = dataset.map(to_schema, remove_columns=available, features=STORAGE_FEATURES)
    return dataset.cast_column("audio", audio_feature(streaming))


def schema_dataset(columns: dict[str, list], streaming: bool = False):
    """A dataset in the example schema from its columns (schema name -> one value per row; `audio` values are file
    paths or `{"bytes", "path"}` dicts); absent schema columns are all None. For corpora read from tables (TSVs).
    """
    rows = len(columns["audio"])
    data = {name: columns.get(name, [None] * rows) for name in COLUMNS}
    data["audio"] = [_stored_audio(value) for value in data["audio"]]
    dataset = datasets.Dataset.from_dict(data, features=STORAGE_FEATURES)
    if streaming:
        dataset = dataset.to_iterable_dataset()
    return dataset.cast_column("audio", audio_feature(streaming))
