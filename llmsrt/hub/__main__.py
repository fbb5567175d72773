"""`python -m llmsrt.hub card DIR` renders a model card; `python -m llmsrt.hub export SOURCE OUT [--push ...]`
merges LoRA and writes model, processor, code and card, then uploads with huggingface_hub."""

import argparse
import json
import sys

from .card import render_model_card
from .export import export_model, push_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmsrt.hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("card", "export"):
        command = commands.add_parser(name)
        command.add_argument("source", help="A saved LLM-SRT folder (or, for export, a peft adapter folder).")
        if name == "export":
            command.add_argument("output_dir")
            command.add_argument("--push", action="store_true", help="Upload the exported folder to the Hub.")
            command.add_argument("--repo_id", help="Hub repository, e.g. user/llmsrt-qwen2.5-3b.")
            command.add_argument("--private", action="store_true")
            command.add_argument("--revision", help="Branch to upload to (created when missing).")
            command.add_argument("--token")
        command.add_argument("--results", help="results.json written by eval.py.")
        command.add_argument("--dataset_name", default="evaluation set")
        command.add_argument("--datasets", nargs="*", help="Training datasets (Hub ids) for the card.")
        command.add_argument("--license", default="apache-2.0")
    args = parser.parse_args(argv)
    results = json.loads(open(args.results, encoding="utf-8").read()) if args.results else None
    options = {"results": results, "dataset_name": args.dataset_name, "datasets": args.datasets,
               "license": args.license}
    if args.command == "card":
        print(render_model_card(args.source, **options))
        return 0
    if args.push and not args.repo_id:
        parser.error("--push needs --repo_id")
    options["repo_id"] = args.repo_id
    folder = export_model(args.source, args.output_dir, **{k: v for k, v in options.items() if k != "results"},
                          results=results)
    print(f"Exported to {folder}")
    if args.push:
        print(push_folder(folder, args.repo_id, private=args.private, revision=args.revision, token=args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
