"""Train the spoken-language ID head (`llmsrt.language_id`) on the training clips' `src_lang`.

The head is a multinomial logistic regression on the pooled frames of the frozen encoder: the features are computed
once per clip (through the encoder cache when there is one, so clips the curriculum already encoded cost nothing),
standardised, and the linear layer is fitted full-batch with L-BFGS and an L2 penalty. `train.py
--language_id_head true` does it in the curriculum's first stage (later stages inherit the head); this module's CLI
adds a head to a saved model:

    python -m llmsrt.training.language_id --model DIR --train_manifest train.jsonl [--eval_manifest dev.jsonl]
        [--output_dir OUT]   # default: write the model back into DIR
"""

import argparse
import logging

import torch

from ..language_id import accuracy_by_language, language_id_accuracy, pooled_features

logger = logging.getLogger(__name__)


def fit_language_id_head(model, features: torch.Tensor, languages: list[str], l2: float = 1e-3, steps: int = 200):
    """Give `model` a head over the languages found in `languages` and fit it to `features` `(N, F)`."""
    classes = sorted(set(languages))
    if len(classes) < 2:
        raise ValueError(f"A language-ID head needs clips in two or more languages; the training clips are all "
                         f"{classes}.")
    head = model.add_language_id_head(classes)
    device = head.classifier.weight.device
    features = features.float().to(device)
    targets = torch.tensor([classes.index(code) for code in languages], device=device)
    head.feature_mean.copy_(features.mean(0))
    head.feature_std.copy_(features.std(0).clamp(min=1e-5))
    torch.nn.init.zeros_(head.classifier.weight)
    torch.nn.init.zeros_(head.classifier.bias)
    optimizer = torch.optim.LBFGS(head.classifier.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = head(features)
        loss = torch.nn.functional.cross_entropy(logits, targets) + l2 * head.classifier.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        head.classifier.requires_grad_(True)
        optimizer.step(closure)
    head.requires_grad_(False)
    return head


def train_language_id_head(model, processor, train_examples, eval_examples=None, encoder_cache_dir=None,
                           batch_size: int = 16) -> dict:
    """Fit a head on `train_examples` (through the encoder cache in `encoder_cache_dir`, if any) and report its
    accuracy on the training and (optional) evaluation examples: the `language_id` entry of `stage_info.json`."""
    cache = model.disk_encoder_cache(encoder_cache_dir) if encoder_cache_dir else None
    with model.using_encoder_cache(cache):
        features, languages = pooled_features(model, processor, train_examples, batch_size)
        head = fit_language_id_head(model, features, languages)
        train_predictions = head(features.to(head.classifier.weight.device)).argmax(-1)
        notes = {
            "languages": model.config.language_id_languages,
            "train": accuracy_by_language(
                [model.config.language_id_languages[int(i)] for i in train_predictions], languages
            ),
        }
        if eval_examples is not None:
            notes["eval"] = language_id_accuracy(model, processor, eval_examples, batch_size)
    logger.info("Language-ID head over %s: train accuracy %.3f%s", notes["languages"], notes["train"]["accuracy"],
                f", eval {notes['eval']['accuracy']:.3f}" if "eval" in notes else "")
    return notes


def main(argv: list[str] | None = None) -> dict:
    from ..data import load_manifest
    from ..modeling_llmsrt import LLMSRTForConditionalGeneration
    from ..processing_llmsrt import LLMSRTProcessor

    parser = argparse.ArgumentParser(prog="python -m llmsrt.training.language_id", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="A saved LLM-SRT folder.")
    parser.add_argument("--train_manifest", required=True, help="JSONL/CSV manifest: audio + src_lang.")
    parser.add_argument("--eval_manifest", default=None)
    parser.add_argument("--output_dir", default=None, help="Where the model with its head is saved (default: --model).")
    parser.add_argument("--encoder_cache_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args(argv)
    model = LLMSRTForConditionalGeneration.from_pretrained(args.model).eval()
    processor = LLMSRTProcessor.from_pretrained(args.model)
    eval_examples = load_manifest(args.eval_manifest) if args.eval_manifest else None
    notes = train_language_id_head(model, processor, load_manifest(args.train_manifest), eval_examples,
                                   args.encoder_cache_dir, args.batch_size)
    output_dir = args.output_dir or args.model
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    print(notes)
    return notes


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
