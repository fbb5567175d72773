import csv
import logging

import pytest
import soundfile as sf
from helpers import make_clip

from llmsrt.data import AlignmentCollator, ManifestError, load_manifest
from llmsrt.data import write_manifest as write_jsonl_manifest


def write_manifest(folder, rows, kind="jsonl"):
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    for index in range(3):
        sf.write(folder / "audio" / f"{index}.wav", make_clip(1.0, index, 22050), 22050)
    path = folder / f"manifest.{kind}"
    if kind == "jsonl":
        write_jsonl_manifest(path, rows)
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=sorted({key for row in rows for key in row}))
            writer.writeheader()
            writer.writerows(rows)
    return path


GOOD_ROWS = [
    {"id": "a", "audio": "audio/0.wav", "src_lang": "eng", "transcript": "the train", "tgt_lang": "deu",
     "translation": "der zug"},
    {"audio": "audio/1.wav", "src_lang": "fr_fr", "transcript": "bonjour"},
]


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_manifest_rows_resolve_paths_languages_and_ids(tmp_path, kind):
    path = write_manifest(tmp_path, GOOD_ROWS, kind)
    rows = list(load_manifest(path))
    assert [row["id"] for row in rows] == ["a", "manifest-2"]
    assert rows[0]["audio"]["path"] == str(tmp_path / "audio" / "0.wav")
    assert rows[1]["src_lang"] == "fra" and rows[1]["translation"] in (None, "")
    streamed = list(load_manifest(path, streaming=True))
    assert [row["id"] for row in streamed] == ["a", "manifest-2"]


def test_written_manifest_replaces_the_old_one_whole_and_keeps_unicode(tmp_path):
    path = write_manifest(tmp_path, GOOD_ROWS)
    rows = [{**GOOD_ROWS[0], "id": "z", "transcript": "我的姐姐 · héllo"}]
    write_jsonl_manifest(path, rows)
    assert "我的姐姐 · héllo" in path.read_text(encoding="utf-8")  # written as text, not \\u escapes
    assert [row["transcript"] for row in load_manifest(path)] == ["我的姐姐 · héllo"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "manifest.jsonl"]  # no temporary file left


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"audio": "audio/9.wav", "src_lang": "eng", "transcript": "x"}, "row 2.*audio file not found"),
        ({"audio": "audio/1.wav", "src_lang": "xx", "transcript": "x"}, "row 2.*Unknown language code 'xx'"),
        ({"audio": "audio/1.wav", "src_lang": "eng", "transcript": " "}, "row 2.*empty or missing 'transcript'"),
        ({"id": "b", "audio": "audio/1.wav", "src_lang": "eng", "transcript": "x", "translation": "y"},
         r"row 2 \(id=b\).*without 'tgt_lang'"),
        ({"audio": "audio/bad.wav", "src_lang": "eng", "transcript": "x"}, "row 2.*unreadable audio"),
    ],
)
def test_bad_manifest_rows_are_named(tmp_path, bad_row, message):
    path = write_manifest(tmp_path, [GOOD_ROWS[0], bad_row])
    (tmp_path / "audio" / "bad.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_skip_invalid_rows_counts_and_logs(tmp_path, caplog):
    rows = [GOOD_ROWS[0], {"audio": "audio/9.wav", "src_lang": "eng", "transcript": "x"}, GOOD_ROWS[1]]
    path = write_manifest(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        dataset = load_manifest(path, skip_invalid=True)
    assert len(dataset) == 2
    assert "Skipped 1 invalid row(s)" in caplog.text and "row 2" in caplog.text


def test_a_manifest_with_the_removed_word_timestamps_column_still_reaches_the_align_batch(tiny, tmp_path):
    _, processor = tiny
    timed = {**GOOD_ROWS[0], "transcript": "the train", "word_timestamps": [[0, 3, 0.1, 0.3], [4, 9, 0.3, 0.8]]}
    path = write_manifest(tmp_path, [timed, {**GOOD_ROWS[0], "id": "b", "audio": "audio/1.wav"}])
    examples = list(load_manifest(path))  # as earlier versions wrote them: the column is ignored, like any other
    assert "word_timestamps" not in examples[0] and examples[0]["transcript"] == "the train"
    batch = AlignmentCollator(processor)(examples)
    assert set(batch) == {"input_features", "input_features_mask", "ctc_labels"}  # what the align model reads
