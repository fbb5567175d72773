"""CoVoST-2 as published: one TSV per direction, `covost_v2.{src}_{tgt}.tsv` (columns `path`, `translation`,
`split`; older files also `sentence`, `client_id`), whose audio and transcripts come from the matching Common Voice
(4) release: joined on `path` with `{release}/{src}/validated.tsv` (`path`, `sentence`), audio in
`{release}/{src}/clips/`. The training split is `train` + `train_covost`, as in the reference loaders.
"""

import logging
import os
from pathlib import Path

from ..languages import get_language
from .common_voice import existing_clips, language_of_locale, locale_folder, locale_of, read_tsv
from .loading_report import DataReport, direction_key
from .schema import schema_dataset

logger = logging.getLogger(__name__)

# The 36 directions of CoVoST-2 (Common Voice locales): 21 into English, 15 out of it, none between two others.
X_TO_ENGLISH = ("fr", "de", "es", "ca", "it", "ru", "zh-CN", "pt", "fa", "et", "mn", "nl", "tr", "ar", "sv-SE", "lv",
                "sl", "ta", "ja", "id", "cy")
ENGLISH_TO_X = ("de", "ca", "zh-CN", "fa", "et", "mn", "tr", "ar", "sv-SE", "lv", "sl", "ta", "ja", "id", "cy")
LOCALE_DIRECTIONS = tuple((x, "en") for x in X_TO_ENGLISH) + tuple(("en", x) for x in ENGLISH_TO_X)
# Values of the `split` column that make up each split.
SPLITS = {"train": ("train", "train_covost"), "dev": ("dev",), "test": ("test",)}
NOT_VALIDATED = "not in validated.tsv"


def covost_directions() -> list[tuple[str, str]]:
    """CoVoST-2's directions as `(src, tgt)` language codes, e.g. `("fra", "eng")`."""
    return [(language_of_locale(src), language_of_locale(tgt)) for src, tgt in LOCALE_DIRECTIONS]


def covost_directions_among(languages) -> list[tuple[str, str]]:
    """`--directions all`: the CoVoST-2 directions both of whose languages are among `languages`."""
    wanted = {get_language(code).code for code in languages}
    return [(src, tgt) for src, tgt in covost_directions() if src in wanted and tgt in wanted]


def covost_locales(src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """The locales of a CoVoST-2 direction (`("fra", "eng")` -> `("fr", "en")`), or a `ValueError` listing those
    CoVoST-2 has."""
    source, target = get_language(src_lang).code, get_language(tgt_lang).code
    if (source, target) not in covost_directions():
        listed = " ".join(f"{src}-{tgt}" for src, tgt in covost_directions())
        raise ValueError(f"CoVoST-2 has no {source}-{target} direction. It has 21 into English and 15 out of it: "
                         f"{listed}.")
    return locale_of(source), locale_of(target)


def load_covost2(src_lang: str, tgt_lang: str, split: str = "train", path: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, streaming: bool = False,
                 report: DataReport | None = None):
    """CoVoST-2 `src_lang` -> `tgt_lang` examples: the transcript is Common Voice's `sentence`, the translation the
    TSV's, the clip's file name (`path`) the example id.

    Args:
        path: the folder of the `covost_v2.*.tsv` files.
        data_dir: the Common Voice release folder (one folder per locale).
        split: `train` (`train` + `train_covost` rows), `dev` or `test`.
        report: where the rows left out are counted (not in `validated.tsv`; clip missing).
    """
    if split not in SPLITS:
        raise ValueError(f"CoVoST-2 has the splits {', '.join(SPLITS)} (train = train + train_covost); got {split!r}.")
    report = report if report is not None else DataReport()
    src_locale, tgt_locale = covost_locales(src_lang, tgt_lang)
    source, target = get_language(src_lang).code, get_language(tgt_lang).code
    direction = direction_key(source, target)
    if not path or not Path(path).is_dir():
        raise ValueError(f"--dataset_path must be the folder of CoVoST-2's covost_v2.*.tsv files; got {path!r}.")
    tsv = Path(path) / f"covost_v2.{src_locale}_{tgt_locale}.tsv"
    if not tsv.is_file():
        present = sorted(file.name for file in Path(path).glob("covost_v2.*.tsv"))
        raise ValueError(f"{tsv} not found (extract covost_v2.{src_locale}_{tgt_locale}.tsv.tar.gz there); the folder "
                         f"has: {', '.join(present) or 'no covost_v2.*.tsv file'}.")
    folder = locale_folder(data_dir, src_locale)
    pairs = read_tsv(tsv, ["path", "translation", "split"])
    pairs = pairs[pairs["split"].isin(SPLITS[split])]
    validated = read_tsv(folder / "validated.tsv", ["path", "sentence"]).drop_duplicates("path")
    joined = pairs[["path", "translation"]].merge(validated, on="path", how="inner")
    report.skip(direction, NOT_VALIDATED, len(pairs) - len(joined))
    if len(joined) < len(pairs):
        logger.warning("%s: %d of %d %s rows are not in %s: left out.", direction, len(pairs) - len(joined),
                       len(pairs), split, folder / "validated.tsv")
    joined = joined[existing_clips(folder, joined["path"], report, direction)]
    return schema_dataset(
        {"audio": [str(folder / "clips" / clip) for clip in joined["path"]], "id": list(joined["path"]),
         "src_lang": [source] * len(joined), "transcript": list(joined["sentence"]),
         "tgt_lang": [target] * len(joined), "translation": list(joined["translation"])},
        streaming,
    )
