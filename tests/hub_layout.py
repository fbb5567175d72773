"""Write small datasets in the Hugging Face Hub's script-free layout: per-config parquet files declared in the
README's YAML (`configs`, `dataset_info` with an `audio` feature), as `load_dataset(folder, config)` reads them."""

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import yaml


def wav_bytes(waveform, sampling_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, sampling_rate, format="WAV")
    return buffer.getvalue()


def _arrow_type(kind: str):
    if kind == "audio":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return {"int32": pa.int32(), "int64": pa.int64(), "string": pa.string()}[kind]


def _yaml_dtype(kind: str):
    return {"audio": {"sampling_rate": 16000}} if kind == "audio" else kind


def write_hub_dataset(root: Path, configs: dict[str, dict[str, list[dict]]], kinds: dict[str, str]) -> Path:
    """`configs`: config name -> split -> rows; `kinds`: column -> 'audio' | 'int32' | 'int64' | 'string'."""
    root.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(name, _arrow_type(kind)) for name, kind in kinds.items()])
    card_configs, card_info = [], []
    for config, splits in configs.items():
        files = []
        for split, rows in splits.items():
            relative = f"{config}/{split}-00000-of-00001.parquet"
            (root / config).mkdir(exist_ok=True)
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, root / relative)
            files.append({"split": split, "path": relative})
        card_configs.append({"config_name": config, "data_files": files})
        card_info.append(
            {
                "config_name": config,
                "features": [
                    {"name": name, "dtype": _yaml_dtype(kind)} if kind != "audio" else
                    {"name": name, "dtype": {"audio": {"sampling_rate": 16000}}}
                    for name, kind in kinds.items()
                ],
            }
        )
    card = yaml.safe_dump({"configs": card_configs, "dataset_info": card_info}, sort_keys=False)
    (root / "README.md").write_text(f"---\n{card}---\n# test dataset\n", encoding="utf-8")
    return root
