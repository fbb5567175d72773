"""Demo training text with a large vocabulary: short sequences of a language's frequent words (`wordfreq`).

The demo's sentences come from 480 frames, so a speech adapter trained on them can learn the frames rather than
how words sound. A word list spoken by the same voices covers each language's few thousand most frequent words,
in no order a model could guess: it teaches transcription only (there is no translation), so it serves the
transcript stages (`align`, `asr`) and the translation stages leave it out. Chinese words are written in
characters with no spaces and spoken from pinyin, like the other Chinese clips.
"""

import random

from ..languages import LANGUAGES
from .demo_templates import chinese_pinyin

VOCABULARY_SIZE = 3000  # the most frequent words a list draws from
WORDS_PER_LIST = (4, 8)


def _vocabulary(language: str) -> list[str]:
    try:
        import wordfreq
    except ImportError as error:
        raise ImportError("Word-list clips need wordfreq: pip install -e .[demo]") from error
    available = set(wordfreq.available_languages())  # ISO 639-1, as Whisper's codes in the language registry
    if language not in LANGUAGES or LANGUAGES[language].whisper not in available:
        supported = sorted(code for code, known in LANGUAGES.items() if known.whisper in available)
        raise ValueError(f"No word list for {language!r}; word lists exist for {supported}.")
    words = wordfreq.top_n_list(LANGUAGES[language].whisper, VOCABULARY_SIZE)
    return [word for word in words if word.isalpha() and (language == "zho" or len(word) > 1)]  # no "l", "d"...


def word_lists(count: int, languages: list[str], seed: int = 0) -> list[dict]:
    """`count` word lists per language, as rows `{"id", "language", "text", "spoken"}` (`id` = `w<lang><k>`).

    Each list is 4 to 8 words drawn uniformly from the language's `VOCABULARY_SIZE` most frequent words, its first
    letter capitalised and a full stop added, so that it reads like the corpus' sentences. The same `seed` gives the
    same lists.
    """
    rows = []
    for language in languages:
        vocabulary, rng = _vocabulary(language), random.Random(f"word-lists:{seed}:{language}")
        for index in range(count):
            words = rng.sample(vocabulary, rng.randint(*WORDS_PER_LIST))
            if language == "zho":
                text = "".join(words) + "。"
                spoken = chinese_pinyin(text)
            else:
                text = spoken = " ".join(words).capitalize() + "."
            rows.append({"id": f"w{language}{index:04d}", "language": language, "text": text, "spoken": spoken})
    return rows
