"""Demo sentences whose content cannot be guessed: templates with slots (names, numbers, places, things) filled
per sentence.

The hand-written demo sentences let a model score well by writing any fluent sentence in the right language; a
filled template can only be transcribed or translated by hearing which number, name, city or thing was said. Each
template (`templates.tsv`) is written in every demo language with slots `{name}`, `{name2}`, `{n}`, `{city}`,
`{items}`; the slot values (`slots.tsv`) come with their translations, so a filled template is parallel.
Numbers are written as digits (as a transcript would) and spoken by the voice in its own language; Chinese is
spoken from pinyin made by `pypinyin` after `cn2an` writes the digits as Chinese numerals.
"""

import csv
import random
import re
from pathlib import Path

import cn2an
from pypinyin import Style, lazy_pinyin

TEMPLATES = Path(__file__).with_name("templates.tsv")
SLOTS = Path(__file__).with_name("slots.tsv")
SLOT = re.compile(r"\{(\w+)\}")
NUMBER_RANGE = (2, 99)


def _read_tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def chinese_pinyin(text: str) -> str:
    """What eSpeak's `cmn-latn-pinyin` voice reads for Chinese `text`: tone-numbered pinyin, digits as numerals.

    >>> chinese_pinyin("房间号是47。")
    'fang2 jian1 hao4 shi4 si4 shi2 qi1 。'
    """
    spoken = re.sub(r"\d+", lambda match: cn2an.an2cn(match.group()), text)
    return " ".join(lazy_pinyin(spoken, style=Style.TONE3))


def fill_templates(count: int, languages: list[str], seed: int = 0) -> list[dict]:
    """`count` parallel sentences, rows like `sentences.tsv`'s: `id` (`tpl<k>`), one column per language,
    and `zho_pinyin` when Chinese is among `languages`. The same `seed` gives the same sentences."""
    templates, slots = _read_tsv(TEMPLATES), _read_tsv(SLOTS)
    missing = [code for code in languages if code not in templates[0]]
    if missing:
        raise ValueError(f"The demo templates are written in {sorted(templates[0].keys() - {'id'})}, not {missing}.")
    values = {}
    for row in slots:
        values.setdefault(row["slot"], []).append(row)
    rng = random.Random(f"templates:{seed}")
    rows = []
    for index in range(count):
        template = templates[index % len(templates)]
        names = rng.sample(values["name"], 2)
        choice = {"name": names[0], "name2": names[1], "city": rng.choice(values["city"]),
                  "items": rng.choice(values["items"]), "n": str(rng.randint(*NUMBER_RANGE))}
        row = {"id": f"tpl{index:04d}"}
        for code in languages:
            row[code] = SLOT.sub(lambda m, code=code, choice=choice: choice[m.group(1)] if m.group(1) == "n"
                                 else choice[m.group(1)][code], template[code])
        if "zho" in languages:
            row["zho_pinyin"] = chinese_pinyin(row["zho"])
        rows.append(row)
    return rows
