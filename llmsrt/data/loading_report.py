"""What loading a stage's examples kept, cut and left out, per direction: for the log, `stage_info.json` and
`python -m llmsrt.data.inspect_stage`."""

from collections import Counter
from dataclasses import dataclass, field


def direction_key(src_lang: str, tgt_lang: str | None) -> str:
    """`"eng-deu"` for a translation example, `"eng"` for a transcript-only one."""
    return f"{src_lang}-{tgt_lang}" if tgt_lang else src_lang


@dataclass
class DirectionCounts:
    examples: int = 0
    audio_seconds: float = 0.0  # after trimming
    trimmed: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows left out


@dataclass
class DataReport:
    """Counts per direction. `counted` is False for a stream, whose rows are checked (and skips logged) only as they
    are read: then only the loaders' own skips (missing clips, ...) are known in advance."""

    directions: dict[str, DirectionCounts] = field(default_factory=dict)
    counted: bool = True

    def of(self, direction: str) -> DirectionCounts:
        return self.directions.setdefault(direction, DirectionCounts())

    def skip(self, direction: str, reason: str, count: int = 1) -> None:
        if count:
            self.of(direction).skipped[reason] += count

    def keep(self, direction: str, seconds: float, trimmed: bool = False) -> None:
        counts = self.of(direction)
        counts.examples += 1
        counts.audio_seconds += seconds
        counts.trimmed += int(trimmed)

    @property
    def examples(self) -> int:
        return sum(counts.examples for counts in self.directions.values())

    @property
    def skipped(self) -> Counter:
        return sum((counts.skipped for counts in self.directions.values()), Counter())

    def as_dict(self) -> dict:
        """`{"examples", "by_direction", "audio_seconds", "trimmed", "skipped"}` (inspect's `--json` layout)."""
        return {
            "examples": self.examples,
            "by_direction": {key: counts.examples for key, counts in sorted(self.directions.items())},
            "audio_seconds": round(sum(counts.audio_seconds for counts in self.directions.values()), 3),
            "trimmed": sum(counts.trimmed for counts in self.directions.values()),
            "skipped": dict(sorted(self.skipped.items())),
        }

    def table(self) -> str:
        """One row per direction: examples, hours, trimmed, skipped with reasons (a Markdown table)."""
        lines = ["| direction | examples | hours | trimmed | skipped |", "|---|---:|---:|---:|---|"]
        for key, counts in sorted(self.directions.items()):
            lines.append(f"| {key} | {counts.examples} | {counts.audio_seconds / 3600:.4f} | {counts.trimmed} | "
                         f"{_reasons(counts.skipped)} |")
        total = self.as_dict()
        lines.append(f"| all | {total['examples']} | {total['audio_seconds'] / 3600:.4f} | {total['trimmed']} | "
                     f"{_reasons(self.skipped)} |")
        return "\n".join(lines)

    def summary(self) -> str:
        if not self.counted:
            skipped = _reasons(self.skipped)
            return f"streamed: rows are checked as they are read (skipped before streaming: {skipped})"
        total = self.as_dict()
        return (f"{total['examples']} examples, {total['audio_seconds'] / 3600:.2f} h of audio, {total['trimmed']} "
                f"cut to the encoder window, skipped: {_reasons(self.skipped)}")


def _reasons(skipped: Counter) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"
