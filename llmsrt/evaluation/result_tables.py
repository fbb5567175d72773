"""Readable outputs of an evaluation: the source x target BLEU matrix (Markdown), a heatmap, a comparison with
published per-direction scores."""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .scoring import _mean  # noqa: E402


def bleu_matrix(directions: dict) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    sources = sorted({scores["src_lang"] for scores in directions.values()})
    targets = sorted({scores["tgt_lang"] for scores in directions.values()})
    cells = {(s["src_lang"], s["tgt_lang"]): s["bleu"] for s in directions.values()}
    return sources, targets, cells


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def matrix_markdown(directions: dict, averages: dict, metric_name: str = "BLEU") -> str:
    """Rows are source languages, columns target languages; row and column averages, eng->X, X->eng, overall."""
    sources, targets, cells = bleu_matrix(directions)
    header = f"| {metric_name}: src \\ tgt | " + " | ".join(targets) + " | avg |"
    lines = [header, "|" + "---|" * (len(targets) + 2)]
    for source in sources:
        row = [cells.get((source, target)) for target in targets]
        lines.append(f"| **{source}** | " + " | ".join(_fmt(v) for v in row) + f" | {_fmt(_mean(row))} |")
    column_means = [_mean(cells.get((s, t)) for s in sources) for t in targets]
    lines.append("| **avg** | " + " | ".join(_fmt(v) for v in column_means) + f" | {_fmt(_mean(cells.values()))} |")
    bleu = averages.get("bleu", {})
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


def save_heatmap(directions: dict, path: str | Path, title: str = "BLEU by direction") -> Path:
    sources, targets, cells = bleu_matrix(directions)
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
    """A CSV with `src`, `tgt` and metric columns (`bleu`, `spbleu`, `comet`), keyed by `src-tgt`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {f"{row['src']}-{row['tgt']}": row for row in csv.DictReader(handle)}


def delta_markdown(directions: dict, reference: dict[str, dict], label: str = "published") -> str:
    """Side-by-side BLEU per shared direction and the difference, with the average over shared directions."""
    shared = [name for name in directions if name in reference]
    lines = [f"| direction | ours | {label} | delta |", "|---|---|---|---|"]
    ours_all, theirs_all = [], []
    for name in shared:
        ours, theirs = directions[name]["bleu"], float(reference[name]["bleu"])
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
