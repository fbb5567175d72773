"""How LLM-SRT decodes: as the paper's reference, whose `no_repeat_ngram_size` and `repetition_penalty` read the
generated answer only (it generates from `inputs_embeds`). `LLMSRTAnswerDecodingMixin` gives
`LLMSRTForConditionalGeneration` its `generate`; the settings' defaults are `PAPER_DECODING`. `generate` also takes an
`answer_draft` (an expected answer, e.g. the previous hypothesis of a live translator for the same, grown audio): its
tokens are checked by transformers' assisted decoding, with the same output as without it and fewer forward passes.
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
from transformers.generation.candidate_generator import PromptLookupCandidateGenerator

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


class AnswerDraftCandidateGenerator(PromptLookupCandidateGenerator):
    r"""
    Proposes tokens from a draft of the answer for transformers' assisted decoding: at the start, the draft's first
    tokens; then, the tokens that follow in the draft the longest n-gram (2 to `max_matching_ngram_size` tokens) that
    ends the answer generated so far (the occurrence nearest to the same place in the draft), as prompt lookup
    decoding (`PromptLookupCandidateGenerator`, whose settings it keeps) does with the prompt. The model checks all
    proposed tokens in one forward pass and keeps those it would have generated itself: greedy decoding gives the same
    answer as without a draft, in fewer forward passes when the draft is close (a live translator's hypothesis for the
    same audio one chunk earlier). Fewer than `min_proposed_tokens` are not proposed: on a CPU a forward pass over a
    few positions costs about twice one over a single position (a matrix product instead of a matrix-vector product),
    which a proposal of one or two tokens does not repay.

    Args:
        draft_ids (`torch.LongTensor` of shape `(draft_length,)`): the expected answer's tokens.
        prompt_length (`int`): the prompt's length (`input_ids.shape[1]` given to `generate`).
        num_output_tokens (`int`): the most tokens proposed at once.
        max_length (`int`): the generation's `max_length` (prompt included).
        max_matching_ngram_size (`int`): the longest n-gram looked up.
        eos_token_id (`torch.Tensor`, *optional*): proposals stop before an end-of-sequence token.
        min_proposed_tokens (`int`): shorter proposals are not made (the step generates one token).
    """

    def __init__(
        self,
        draft_ids: torch.LongTensor,
        prompt_length: int,
        num_output_tokens: int = 10,
        max_length: int = 20,
        max_matching_ngram_size: int = 3,
        eos_token_id: torch.Tensor | None = None,
        min_proposed_tokens: int = 3,
    ):
        if draft_ids.dim() != 1:
            raise ValueError(
                f"`answer_draft` has to be one answer's tokens, of shape (length,), got {tuple(draft_ids.shape)}."
            )
        super().__init__(eos_token_id, num_output_tokens, max_matching_ngram_size, max_length)
        self.draft_ids = draft_ids
        self.prompt_length = prompt_length
        self.min_proposed_tokens = min_proposed_tokens

    def _continuation(self, generated: torch.LongTensor) -> int | None:
        """Where in the draft the continuation of `generated` `(generated_length,)` starts, or None."""
        if generated.numel() == 0:
            return 0
        for size in range(min(self.max_matching_ngram_size, generated.numel(), self.draft_ids.numel()), 1, -1):
            windows = self.draft_ids.unfold(0, size, 1)  # (draft_length - size + 1, size)
            hits = (windows == generated[-size:]).all(dim=1).nonzero().flatten() + size
            hits = hits[hits < self.draft_ids.numel()]
            if hits.numel():
                return int(hits[(hits - generated.numel()).abs().argmin()])
        return None

    def get_candidates(self, input_ids: torch.LongTensor, **kwargs) -> tuple[torch.LongTensor, None]:
        """
        Args:
            input_ids: `(1, prompt_length + generated)` the prompt and the answer so far.

        Returns:
            `(1, prompt_length + generated + proposed)` with the proposed draft tokens appended (none: `input_ids`
            unchanged, and the step generates one token), and no logits.
        """
        room = min(self.num_output_tokens, self.max_length - input_ids.shape[1] - 1)
        start = self._continuation(input_ids[0, self.prompt_length :]) if room > 0 else None
        if start is None:
            return input_ids, None
        proposed = self.draft_ids[start : start + room].to(input_ids.device)
        if self.eos_token_id is not None:
            ends = torch.isin(proposed, self.eos_token_id.to(proposed.device)).nonzero()
            proposed = proposed[: int(ends[0])] if ends.numel() else proposed
        if proposed.numel() < self.min_proposed_tokens:
            return input_ids, None
        return torch.cat([input_ids, proposed[None]], dim=1), None


class LLMSRTAnswerDecodingMixin:
    """`generate` with the answer-only penalty and n-gram ban, and an optional answer draft. Mixed into
    `LLMSRTForConditionalGeneration` ahead of `GenerationMixin`."""

    _answer_draft: torch.LongTensor | None = None  # set by `generate(answer_draft=...)` for its duration

    def _get_candidate_generator(
        self, generation_config: GenerationConfig, input_ids: torch.LongTensor, *args, **kwargs
    ):
        """transformers' candidate generator for assisted decoding; the draft's, when `generate` was given one."""
        if self._answer_draft is None:
            return super()._get_candidate_generator(generation_config, input_ids, *args, **kwargs)
        return AnswerDraftCandidateGenerator(
            self._answer_draft,
            input_ids.shape[1],
            num_output_tokens=generation_config.prompt_lookup_num_tokens,
            max_length=generation_config.max_length,
            eos_token_id=generation_config._eos_token_tensor,
        )

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

        `answer_draft` (`(draft_length,)` or `(1, draft_length)` token ids, without the prompt; a batch of one, greedy
        decoding): an expected answer whose tokens transformers' assisted decoding checks several at a time
        (`AnswerDraftCandidateGenerator`, up to `prompt_lookup_num_tokens`, default 10, per step). The answer is the
        one decoding without the draft gives; only the number of forward passes changes.

        transformers applies given processors after its own (before the sampling warpers): the ones they move past
        only lower scores to `-inf` (suppressed tokens, minimum length), which the penalty and the ban leave at
        `-inf`, so the tokens are those of the reference. (`forced_eos_token_id`, which overwrites the scores of the
        last step, is the exception: there the ban can still fall on the forced token. The paper does not set it.)
        """
        draft = kwargs.pop("answer_draft", None)
        if draft is not None:
            draft = torch.as_tensor(draft, dtype=torch.long)
            self._answer_draft = draft[0] if draft.dim() == 2 and draft.shape[0] == 1 else draft
            kwargs.setdefault("prompt_lookup_num_tokens", 10)
        try:
            return self._generate_answer(inputs, generation_config, logits_processor, **kwargs)
        finally:
            self._answer_draft = None

    def _generate_answer(self, inputs, generation_config, logits_processor, **kwargs):
        """`generate` without the draft's bookkeeping."""
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


__all__ = [
    "AnswerDraftCandidateGenerator",
    "LLMSRTAnswerDecodingMixin",
    "LLMSRTAnswerLogitsProcessor",
    "PAPER_DECODING",
]
