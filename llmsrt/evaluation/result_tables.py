"""Readable outputs of an evaluation: the source x target BLEU matrix (Markdown), a heatmap, a comparison with
published per-direction scores."""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..languages import language_code  # noqa: E402
from .scoring import _mean  # noqa: E402

REFERENCE = Path(__file__).with_name("reference")
# MCAT v2.0 (mcat-large, Gemma-3-27B): the authors' `evaluation/srt_large_27b_fleurs_s2tt_70_69.csv` as published
# (`yxduir/m2m-70` at a15ce87): idx,iso3,spbleu,comet over the 4,830 FLEURS directions, iso3 = `src_tgt` in MCAT's
# codes (cmn for Mandarin).
PUBLISHED_MCAT_LARGE = REFERENCE / "mcat-large-gemma3-27b-fleurs-4830.csv"
METRIC_LABELS = {"bleu": "BLEU", "spbleu": "spBLEU", "comet": "COMET"}


def bleu_matrix(directions: dict, metric: str = "bleu") -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """Source and target languages, and `metric` (`bleu` or `spbleu`) per `(source, target)`."""
    sources = sorted({scores["src_lang"] for scores in directions.values()})
    targets = sorted({scores["tgt_lang"] for scores in directions.values()})
    cells = {(s["src_lang"], s["tgt_lang"]): s[metric] for s in directions.values()}
    return sources, targets, cells


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def matrix_markdown(directions: dict, averages: dict, metric: str = "bleu") -> str:
    """Rows are source languages, columns target languages; row and column averages, eng->X, X->eng, overall, of
    `metric` (`bleu` or `spbleu`)."""
    sources, targets, cells = bleu_matrix(directions, metric)
    metric_name = METRIC_LABELS[metric]
    header = f"| {metric_name}: src \\ tgt | " + " | ".join(targets) + " | avg |"
    lines = [header, "|" + "---|" * (len(targets) + 2)]
    for source in sources:
        row = [cells.get((source, target)) for target in targets]
        lines.append(f"| **{source}** | " + " | ".join(_fmt(v) for v in row) + f" | {_fmt(_mean(row))} |")
    column_means = [_mean(cells.get((s, t)) for s in sources) for t in targets]
    lines.append("| **avg** | " + " | ".join(_fmt(v) for v in column_means) + f" | {_fmt(_mean(cells.values()))} |")
    bleu = averages.get(metric, {})
    lines += [
        "",
        f"- Average over {len(cells)} directions: **{_fmt(bleu.get('all'))}**",
        f"- eng->X: {_fmt(bleu.get('eng->X'))}; X->eng: {_fmt(bleu.get('X->eng'))}",
    ]
    return "\n".join(lines) + "\n"


def audio_gain_markdown(gain: dict) -> str:
    """The audio gain (loss with another clip's audio / loss with its own - 1; 0 = the audio is ignored), overall
    and per source language."""

    def fmt(value) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = [
        (
            f"Audio gain: **{fmt(gain.get('overall'))}** (answer loss {fmt(gain.get('own_audio_loss'))} with its "
            f"own audio, {fmt(gain.get('other_audio_loss'))} with another clip's; 0 = the audio is ignored)"
        ),
    ]
    per_language = gain.get("per_source_language") or {}
    if per_language:
        lines += ["", "| source | audio gain |", "|---|---|"]
        lines += [f"| {language} | {fmt(value)} |" for language, value in per_language.items()]
    return "\n".join(lines) + "\n"


def save_heatmap(directions: dict, path: str | Path, metric: str = "bleu") -> Path:
    sources, targets, cells = bleu_matrix(directions, metric)
    title = f"{METRIC_LABELS[metric]} by direction"
    grid = np.array([[cells.get((s, t), np.nan) for t in targets] for s in sources], dtype=float)
    figure, axis = plt.subplots(figsize=(1.2 + 0.6 * len(targets), 1.0 + 0.5 * len(sources)))
    image = axis.imshow(np.ma.masked_invalid(grid), cmap="viridis")
    axis.set_xticks(range(len(targets)), targets, rotation=45)
    axis.set_yticks(range(len(sources)), sources)
    axis.set_xlabel("target")
    axis.set_ylabel("source")
    for i in range(len(sources)):
        for j in range(len(targets)):
            if not np.isnan(grid[i, j]):
                axis.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", color="white", fontsize=7)
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def read_reference(path: str | Path) -> dict[str, dict]:
    """Published per-direction scores keyed by `src-tgt` in registry codes: a CSV with `src` and `tgt` columns (the
    v1.0 table) or MCAT's `iso3` column (`afr_cmn`, its codes: `cmn` is read as `zho`), and metric columns (`bleu`,
    `spbleu`, `comet`)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    table = {}
    for number, row in enumerate(rows, start=2):
        if "iso3" in row:
            source, _, target = row["iso3"].partition("_")
        elif "src" in row and "tgt" in row:
            source, target = row["src"], row["tgt"]
        else:
            raise ValueError(f"{path}: a reference CSV needs src and tgt columns, or iso3 (src_tgt); line {number} "
                             f"has {', '.join(row)}.")
        table[f"{_registry_code(source)}-{_registry_code(target)}"] = row
    return table


def _registry_code(code: str) -> str:
    """A language's registry code; a code the registry lacks is kept as written (no direction of ours matches it)."""
    try:
        return language_code(code)
    except ValueError:
        return code


def delta_markdown(directions: dict, reference: dict[str, dict], label: str = "published", metric: str = "bleu") -> str:
    """Side-by-side `metric` (`bleu`, `spbleu` or `comet`) per shared direction and the difference, with the average
    over shared directions. A reference without that metric's column is an error naming the columns it has."""
    shared = [name for name in directions if name in reference]
    columns = next(iter(reference.values()), {}).keys()
    if reference and metric not in columns:
        raise ValueError(f"The reference table has no {metric} column (it has {', '.join(columns)}): compare "
                         "another metric (eval.py --metric_rule v1 scores bleu, v2 spbleu).")
    lines = [f"| direction | ours ({METRIC_LABELS[metric]}) | {label} | delta |", "|---|---|---|---|"]
    ours_all, theirs_all = [], []
    for name in shared:
        ours, theirs = directions[name][metric], float(reference[name][metric])
        ours_all.append(ours)
        theirs_all.append(theirs)
        lines.append(f"| {name} | {ours:.1f} | {theirs:.1f} | {ours - theirs:+.1f} |")
    if shared:
        ours_mean, theirs_mean = _mean(ours_all), _mean(theirs_all)
        lines.append(f"| **average ({len(shared)})** | {ours_mean:.1f} | {theirs_mean:.1f} | "
                     f"{ours_mean - theirs_mean:+.1f} |")
    else:
        lines.append("| (no shared directions) | | | |")
    return "\n".join(lines) + "\n"


def language_id_markdown(language_id: dict) -> str:
    """Accuracy of the spoken-language ID head, overall and per source language."""
    lines = [f"Spoken-language ID accuracy: {100 * language_id['accuracy']:.1f}% of {language_id['examples']} clips",
             "", "| language | accuracy | clips |", "|---|---|---|"]
    for code, row in language_id["per_language"].items():
        lines.append(f"| {code} | {100 * row['accuracy']:.1f}% | {row['examples']} |")
    return "\n".join(lines) + "\n"
