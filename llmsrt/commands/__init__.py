"""The console scripts whose tools return a summary rather than an exit status (setup.py `entry_points`): each runs
the tool's `main` and exits 0. The layer above every other: it may import training, evaluation and the demo."""

import logging


def train(argv: list[str] | None = None) -> int:
    """`llmsrt-train RECIPE --output_dir DIR ...`: train.py, the curriculum of `llmsrt.training`."""
    from ..training import main

    main(argv)
    return 0


def evaluate(argv: list[str] | None = None) -> int:
    """`llmsrt-eval --model DIR --manifest test.jsonl --output_dir OUT`: eval.py, `llmsrt.evaluation`. Prints the
    language-pair matrix (matrix.md) it writes."""
    from transformers import HfArgumentParser

    from ..evaluation import EvalArguments, evaluate_model

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    (arguments,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses(args=argv)
    evaluate_model(arguments)
    with open(f"{arguments.output_dir}/matrix.md", encoding="utf-8") as matrix:
        print(matrix.read())
    return 0


def train_language_id(argv: list[str] | None = None) -> int:
    """`llmsrt-train-language-id --model DIR --train_manifest ...`: `python -m llmsrt.training.language_id`."""
    from ..training.language_id import main

    logging.basicConfig(level=logging.INFO)
    main(argv)
    return 0


def demo(argv: list[str] | None = None) -> int:
    """`llmsrt-demo RECIPE --output_dir DIR`: `python -m llmsrt.demo`, the whole demo run and its report."""
    from ..demo.run import main

    main(argv)
    return 0


def plan(argv: list[str] | None = None) -> int:
    """`llmsrt-plan RECIPE [--gpus N --gpu_memory GB --strategy ddp|fsdp|zero3] [--step_time S]`: what each stage
    needs per GPU (`llmsrt.training.planner`)."""
    from ..training.planner import main

    main(argv)
    return 0
