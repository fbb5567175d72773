"""Which translation directions a run reads: every ordered pair of its languages (FLEURS is n-way parallel: 70
languages give MCAT's 4,830 directions), or the directions it names, narrowed by source, target and centre filters."""

from ..languages import check_languages


def _codes(languages, name: str) -> tuple[str, ...] | None:
    """Registry codes of `languages` (`check_languages`); `None` stays, an empty list is an error naming `name`."""
    if languages is not None and not languages:
        raise ValueError(f"{name} must be a non-empty list of language codes (e.g. eng deu), got {languages!r}.")
    return check_languages(languages)


def filter_directions(
    directions: list[tuple[str, str]],
    source_languages: list[str] | None = None,
    target_languages: list[str] | None = None,
    centre_languages: list[str] | None = None,
) -> list[tuple[str, str]]:
    """The `(source, target)` pairs whose source is among `source_languages`, target among `target_languages`, and
    one side among `centre_languages` (`["eng"]`: English-centric); `None` filters nothing.

    Raises:
        ValueError: a filter holds an unknown code, or leaves no direction (the message names the filters).
    """
    sources = _codes(source_languages, "source_languages")
    targets = _codes(target_languages, "target_languages")
    centre = _codes(centre_languages, "centre_languages")
    kept = [
        (source, target) for source, target in directions
        if (sources is None or source in sources) and (targets is None or target in targets)
        and (centre is None or source in centre or target in centre)
    ]
    if directions and not kept:
        filters = ", ".join(f"{name} {' '.join(codes)}" for name, codes in
                            (("source_languages", sources), ("target_languages", targets),
                             ("centre_languages", centre)) if codes)
        raise ValueError(f"No direction of the {len(directions)} left after the filters ({filters}).")
    return kept


def directions_among(
    languages: list[str],
    source_languages: list[str] | None = None,
    target_languages: list[str] | None = None,
    centre_languages: list[str] | None = None,
) -> list[tuple[str, str]]:
    """Every ordered pair of two distinct `languages` (registry codes; `n` languages give `n * (n - 1)` directions),
    then `filter_directions`."""
    codes = _codes(languages, "languages")
    pairs = [(source, target) for source in codes for target in codes if source != target]
    return filter_directions(pairs, source_languages, target_languages, centre_languages)
