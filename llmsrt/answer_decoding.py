"""How LLM-SRT decodes: as the paper's reference, whose `no_repeat_ngram_size` and `repetition_penalty` read the
generated answer only (it generates from `inputs_embeds`). `LLMSRTAnswerDecodingMixin` gives
`LLMSRTForConditionalGeneration` its `generate`; the settings' defaults are `PAPER_DECODING`.
"""

import copy

import torch
from transformers.generation import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

# The paper's decoding settings: the defaults of `generate` for a new model (a saved generation_config wins).
# `no_repeat_ngram_size` and `repetition_penalty` read the generated answer only, as in the paper's reference
# (which generates from embeddings): see `LLMSRTAnswerDecodingMixin.generate`.
PAPER_DECODING = {"num_beams": 5, "max_new_tokens": 400, "no_repeat_ngram_size": 5, "repetition_penalty": 1.0}


class LLMSRTAnswerLogitsProcessor(LogitsProcessor):
    r"""
    Runs a [`LogitsProcessor`] on the generated answer only: the first `prompt_length` columns of `input_ids` (left
    padding, audio placeholders and prompt tags) are cut off before `processor` reads them.

    The paper's reference generates from `inputs_embeds`, so its `no_repeat_ngram_size` only sees generated tokens.
    Given the prompt as `input_ids`, transformers would ban n-grams of the prompt too, and an SRT answer
    (`transcript<|eng|><|deu|>translation`) must repeat the prompt's tag pair (about 10 BPE tokens for Qwen).

    Args:
        processor (`LogitsProcessor`):
            A processor that reads past tokens, such as [`NoRepeatNGramLogitsProcessor`].
        prompt_length (`int`):
            Length of the prompt given to `generate` (`input_ids.shape[1]`, padding included).
    """

    supports_continuous_batching = False

    def __init__(self, processor: LogitsProcessor, prompt_length: int):
        if not isinstance(prompt_length, int) or prompt_length < 0:
            raise ValueError(f"`prompt_length` has to be a non-negative integer, but is {prompt_length}")
        self.processor = processor
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """
        Args:
            input_ids: `(batch_size * num_beams, prompt_length + generated)` the prompt and the tokens generated so far.
            scores: `(batch_size * num_beams, vocab_size)` next-token scores.

        Returns:
            `(batch_size * num_beams, vocab_size)` the scores as `processor` leaves them given
            `input_ids[:, prompt_length:]`, `(batch_size * num_beams, generated)`.
        """
        return self.processor(input_ids[:, self.prompt_length :], scores)


class LLMSRTAnswerDecodingMixin:
    """`generate` with the answer-only penalty and n-gram ban. Mixed into `LLMSRTForConditionalGeneration` ahead of
    `GenerationMixin`."""

    def answer_logits_processors(
        self, prompt_length: int, no_repeat_ngram_size: int | None = None, repetition_penalty: float | None = None
    ) -> LogitsProcessorList:
        """`repetition_penalty` and `no_repeat_ngram_size` as processors that read the generated answer only: the
        first `prompt_length` columns of `input_ids` `(batch_size * num_beams, prompt_length + generated)` (left
        padding, audio placeholders, prompt tags) are skipped. What `generate` passes to transformers in place of the
        two settings, in transformers' order (the penalty, then the ban); an empty list where neither is on."""
        processors = LogitsProcessorList()
        if repetition_penalty is not None and repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty, prompt_ignore_length=prompt_length))
        if no_repeat_ngram_size:
            processors.append(
                LLMSRTAnswerLogitsProcessor(NoRepeatNGramLogitsProcessor(no_repeat_ngram_size), prompt_length)
            )
        return processors

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate`, with `no_repeat_ngram_size` and `repetition_penalty` applied to the generated
        answer only: `generate` then decodes as the paper's reference, which generates from `inputs_embeds`. An SRT
        answer repeats the prompt's tag pair, which a ban over the prompt ids `(B, L)` would forbid.

        The two settings are read as transformers reads them (a keyword argument, else `generation_config`, else
        `self.generation_config`; a saved generation config still records `no_repeat_ngram_size=5`), switched off in
        transformers' own list and passed as `logits_processor` instead (`answer_logits_processors`), ahead of any
        processors given here. A processor of either kind given in `logits_processor` is kept as given, in place of
        the setting. Generation from `inputs_embeds` (no prompt ids) is left to transformers as it is.

        transformers applies given processors after its own (before the sampling warpers): the ones they move past
        only lower scores to `-inf` (suppressed tokens, minimum length), which the penalty and the ban leave at
        `-inf`, so the tokens are those of the reference. (`forced_eos_token_id`, which overwrites the scores of the
        last step, is the exception: there the ban can still fall on the forced token. The paper does not set it.)
        """
        input_ids = inputs if inputs is not None else kwargs.get("input_ids")
        if input_ids is None or input_ids.shape[-1] == 0:
            return super().generate(inputs, generation_config, logits_processor, **kwargs)
        given = list(logits_processor or [])
        settings = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}  # each one's "off"
        answer_only = {}
        for name, off in settings.items():
            value = kwargs.pop(name) if name in kwargs else None
            for config in (generation_config, self.generation_config):
                if value is None and config is not None:
                    value = getattr(config, name, None)
            answer_only[name] = value if value is not None else off
        if any(isinstance(processor, RepetitionPenaltyLogitsProcessor) for processor in given):
            answer_only["repetition_penalty"] = None  # the given processor stands in for the setting
        if any(isinstance(processor, NoRepeatNGramLogitsProcessor) for processor in given):
            answer_only["no_repeat_ngram_size"] = None
        generation_config = copy.deepcopy(generation_config) if generation_config is not None else None
        for name, value in answer_only.items():
            if value is not None:
                if generation_config is not None:
                    setattr(generation_config, name, settings[name])
                else:
                    kwargs[name] = settings[name]
        processors = self.answer_logits_processors(input_ids.shape[-1], **answer_only)
        processors.extend(given)
        return super().generate(inputs, generation_config, processors, **kwargs)


__all__ = ["LLMSRTAnswerDecodingMixin", "LLMSRTAnswerLogitsProcessor", "PAPER_DECODING"]
