"""What a stage would train on: `python -m llmsrt.data.inspect_stage [RECIPE.yaml] [data arguments of train.py] --stage
align|asr|smt|srt [--split SPLIT] [--json FILE] [--examples_out FILE] [--max_examples N]`.

Loads the stage's examples as training does, decodes every clip (cut to the encoder window, as the collator does)
and prints a table per direction: examples, hours, clips cut to the window, rows left out and why. `--json` writes
`{"examples", "by_direction", "audio_seconds", "trimmed", "skipped"}`; `--examples_out` one JSON line per example
(`id`, `src_lang`, `tgt_lang`, `transcript`, `translation`, `audio_seconds`). A bad direction, a missing folder or
an unreadable clip (without `--skip_invalid_rows true`) exits with status 2 and the error on stderr.
"""

import json
import logging
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .arguments import DataArguments
from .clips import UNREADABLE, clip_waveform
from .loading_report import DataReport, direction_key
from .schema import ENCODER_WINDOW_SECONDS, SAMPLING_RATE
from .stage_data import load_stage_data

STAGES = ("align", "asr", "smt", "srt")


@dataclass
class InspectArguments:
    stage: str = field(default="srt", metadata={"help": "The stage whose examples are read: align, asr, smt or srt."})
    split: str | None = field(default=None, metadata={"help": "The split to read (default: --train_split)."})
    json: str | None = field(default=None, metadata={"help": "Write the counts to this JSON file."})
    examples_out: str | None = field(default=None, metadata={"help": "Write one JSON line per example here."})
    max_examples: int | None = field(default=None, metadata={"help": "Stop after N examples."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the toy corpus is built (default: a temporary folder)."}
    )

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"--stage takes {', '.join(STAGES)}; got {self.stage!r}.")


def parse_args(argv: list[str]) -> tuple[DataArguments, InspectArguments]:
    """train.py's data arguments (a leading recipe's data entries first; the command line wins) and inspect's own."""
    recipe_argv = []
    if argv and argv[0].endswith((".yaml", ".yml")):
        recipe = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8")) or {}
        recipe_argv, argv = DataArguments.recipe_argv(recipe), argv[1:]
    return HfArgumentParser((DataArguments, InspectArguments)).parse_args_into_dataclasses(args=recipe_argv + argv)


def inspect_stage(data_args: DataArguments, args: InspectArguments, output_dir: str) -> DataReport:
    """Decode every example the stage would read; returns the counts (the loader's skips included)."""
    loaded = load_stage_data(data_args, args.stage, output_dir, args.split)
    if loaded.examples is None:
        raise ValueError(f"No {args.split or data_args.train_split} data for --dataset {data_args.dataset}.")
    report = DataReport(directions={key: counts for key, counts in loaded.report.directions.items()})
    for counts in report.directions.values():  # the loader's skips stay; what is kept is measured again, decoded
        counts.examples, counts.audio_seconds, counts.trimmed = 0, 0.0, 0
    with ExitStack() as files:
        lines = files.enter_context(open(args.examples_out, "w", encoding="utf-8")) if args.examples_out else None
        for example in loaded.examples:
            direction = direction_key(example["src_lang"], example["tgt_lang"])
            try:
                waveform = clip_waveform(example, window=None)
            except ValueError:
                if not data_args.skip_invalid_rows:
                    raise
                report.skip(direction, UNREADABLE)
                continue
            seconds = min(waveform.size / SAMPLING_RATE, ENCODER_WINDOW_SECONDS)
            report.keep(direction, seconds, trimmed=waveform.size > ENCODER_WINDOW_SECONDS * SAMPLING_RATE)
            if lines:
                record = {name: example[name] for name in ("id", "src_lang", "tgt_lang", "transcript", "translation")}
                lines.write(json.dumps({**record, "audio_seconds": round(seconds, 3)}, ensure_ascii=False) + "\n")
            if args.max_examples and report.examples >= args.max_examples:
                break
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    try:
        data_args, args = parse_args(sys.argv[1:] if argv is None else argv)
        with tempfile.TemporaryDirectory() as scratch:
            report = inspect_stage(data_args, args, args.output_dir or scratch)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    split = args.split or data_args.train_split
    print(f"{data_args.dataset}, stage {args.stage}, split {split}:\n{report.table()}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
