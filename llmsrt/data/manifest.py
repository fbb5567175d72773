"""Local manifests: JSONL or CSV rows of `audio`, `src_lang`, `transcript` (+ `tgt_lang`, `translation`, `id`)."""

import json
import logging
import os
from pathlib import Path

import datasets
import soundfile

from ..languages import get_language
from .schema import COLUMNS, standardize

logger = logging.getLogger(__name__)

REQUIRED = ("audio", "src_lang", "transcript")


class ManifestError(ValueError):
    """A manifest row that cannot be used; the message names the file, the row and the problem."""


def _row_problem(row: dict, base_dir: Path, require_translation: bool) -> str | None:
    """What is wrong with one row, or None. Also resolves `row["audio"]` against the manifest folder."""
    for field in REQUIRED:
        if not str(row.get(field) or "").strip():
            return f"empty or missing {field!r}"
    for field in ("src_lang", "tgt_lang"):
        if row.get(field):
            try:
                get_language(row[field])
            except ValueError as error:
                return str(error)
    has_translation = bool(str(row.get("translation") or "").strip())
    if require_translation and not (has_translation and row.get("tgt_lang")):
        return "a translation example needs non-empty 'tgt_lang' and 'translation'"
    if has_translation and not row.get("tgt_lang"):
        return "'translation' is given without 'tgt_lang'"
    path = row["audio"]
    if not os.path.isabs(path):
        path = str(base_dir / path)
    if not os.path.isfile(path):
        return f"audio file not found: {path}"
    try:
        soundfile.info(path)
    except Exception as error:  # noqa: BLE001 - soundfile raises several types for unreadable files
        return f"unreadable audio file {path} ({error})"
    return None


def write_manifest(path: str | os.PathLike, rows) -> Path:
    """Write `rows` (dicts) to the JSONL manifest `path`, one row per line, UTF-8; atomically: a reader sees the old
    file or the whole new one, never a half-written one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    temporary.replace(path)
    return path


def load_manifest(
    path: str | os.PathLike,
    streaming: bool = False,
    skip_invalid: bool = False,
    require_translation: bool = False,
):
    """Read a JSONL (`.jsonl`/`.json`) or CSV manifest into the example schema, with a 16 kHz `Audio` column.

    Every row is checked (required fields, known language codes, existing and readable audio). A bad row raises a
    `ManifestError` naming the file, the row number (1-based, as in an editor) and its `id`; with `skip_invalid`,
    bad rows are dropped and their count and reasons are logged, never silently.

    Returns:
        A `datasets.Dataset`, or an `IterableDataset` with `streaming=True` (rows are then checked as they stream).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Manifest not found: {path}")
    suffix = path.suffix.lower()
    builder = {".jsonl": "json", ".json": "json", ".csv": "csv"}.get(suffix)
    if builder is None:
        raise ValueError(f"Unsupported manifest {path.name}: use .jsonl (one JSON object per line) or .csv.")
    raw = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=streaming)
    base_dir = path.parent.resolve()
    for optional in ("id", "tgt_lang", "translation"):
        if optional not in (raw.column_names or []):
            raw = raw.map(lambda row, name=optional: {name: None})

    def check(row, index):
        problem = _row_problem(row, base_dir, require_translation)
        where = f"{path}: row {index + 1}" + (f" (id={row['id']})" if row.get("id") else "")
        if problem is not None:
            if not skip_invalid:
                raise ManifestError(f"{where}: {problem}. Fix the row, or pass skip_invalid=True to drop bad rows.")
            if streaming:
                logger.warning("Skipping %s: %s", where, problem)
            return {"problem": f"{where}: {problem}"}
        return {
            "problem": "",
            "id": str(row["id"]) if row.get("id") not in (None, "") else f"{path.stem}-{index + 1}",
            "audio": row["audio"] if os.path.isabs(row["audio"]) else str(base_dir / row["audio"]),
            "src_lang": get_language(row["src_lang"]).code,
            "tgt_lang": get_language(row["tgt_lang"]).code if row.get("tgt_lang") else None,
        }

    checked = raw.map(check, with_indices=True)
    if not streaming:
        problems = [problem for problem in checked["problem"] if problem]
        if problems:
            logger.warning("Skipped %d invalid row(s) of %s:\n%s", len(problems), path, "\n".join(problems))
    checked = checked.filter(lambda row: not row["problem"])
    columns = {name: name for name in COLUMNS}
    return standardize(checked, columns)
