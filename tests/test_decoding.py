"""The paper's decoding (beam 5, no-repeat 5) reads the generated answer only, as the paper's reference (which generates
from `inputs_embeds`) does: an SRT answer repeats the prompt's tag pair, which a ban over the prompt would forbid."""

import copy
import json

import pytest
import torch
from helpers import CORPUS, SAMPLING_RATE, make_clip
from transformers import GenerationMixin
from transformers.generation import LogitsProcessorList, NoRepeatNGramLogitsProcessor

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.testing import build_tiny_model_and_processor

# transformers warns that generation from `inputs_embeds` (the reference below) reads no prompt ids: the point here.
pytestmark = pytest.mark.filterwarnings("ignore:Passing `.*` with `inputs_embeds`:UserWarning")

# The tag pair is 6 tokens of the tiny tokenizer (`<| eng |> <| deu |>`, as Qwen splits it into several too): the
# prompt's last 5-gram ends in `deu`, which a ban over the whole sequence forbids after `...nine <| eng |> <|`.
TAGGED = {"transcription": "the train leaves at nine", "translation": "der zug fährt um neun ab"}
# A 5-gram (`morning my friend good morning`) that the answer itself repeats: still banned.
REPEATING = "good morning my friend good morning my friend good morning<|eng|><|deu|>guten morgen"
# The answers are about 20 tokens: a shorter limit than the paper's 400 keeps broken (never-ending) answers cheap.
MAX_NEW_TOKENS = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def memorized(one_thread):
    """A tiny model trained until it writes one answer per clip: clip 0 -> `TAGGED`, clip 1 -> `REPEATING`."""
    model, processor = build_tiny_model_and_processor(CORPUS, seed=1)
    clips = [make_clip(1.0, 0), make_clip(1.5, 1)]
    batch = processor(
        audio=clips, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu", targets=[TAGGED, REPEATING]
    )
    torch.manual_seed(0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(100):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.05
    prompts = processor(audio=clips, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    answers = [row[row != -100].tolist() for row in batch["labels"]]  # answer ids + eos
    return model, processor, prompts, answers


def _answers(model, prompts, **kwargs) -> list[list[int]]:
    """Generated answer ids (prompt cut off, padding after eos dropped) per clip."""
    with torch.no_grad():
        generated = model.generate(**prompts, **{"max_new_tokens": MAX_NEW_TOKENS, **kwargs})
    generated = generated[:, prompts["input_ids"].shape[1] :]
    return [_until_eos(row.tolist(), model.generation_config.eos_token_id) for row in generated]


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def _from_embeddings(model, prompts, **kwargs) -> list[list[int]]:
    """The paper's reference: the LLM generates from the prompt's embeddings, with no prompt ids to read."""
    config = copy.deepcopy(model.generation_config)
    config.update(**{"max_new_tokens": MAX_NEW_TOKENS, **kwargs})
    with torch.no_grad():
        embeds = model.embed_inputs(prompts["input_ids"], prompts["input_features"], prompts["input_features_mask"])
        generated = model.language_model.generate(
            inputs_embeds=embeds, attention_mask=prompts["attention_mask"], generation_config=config
        )
    return [_until_eos(row.tolist(), config.eos_token_id) for row in generated]


def _repeated_ngrams(ids: list[int], n: int) -> set[tuple[int, ...]]:
    ngrams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return {ngram for ngram in ngrams if ngrams.count(ngram) > 1}


def test_srt_answer_repeats_the_prompt_tags_under_paper_decoding(memorized, monkeypatch, tmp_path):
    model, processor, prompts, answers = memorized
    assert (model.generation_config.num_beams, model.generation_config.no_repeat_ngram_size) == (5, 5)
    tag_pair = processor.tokenizer("<|eng|><|deu|>", add_special_tokens=False)["input_ids"]
    prompt = prompts["input_ids"][0].tolist()
    assert len(tag_pair) >= 5 and prompt[-len(tag_pair) :] == tag_pair  # a 5-gram of the prompt...
    assert any(answers[0][i : i + len(tag_pair)] == tag_pair for i in range(len(answers[0])))  # ...in the answer

    generated = _answers(model, prompts)
    assert generated[0] == answers[0]
    result = processor.post_process_speech_translation(generated[:1], "srt", "eng", "deu")
    assert result == [TAGGED]
    assert generated == _from_embeddings(model, prompts)  # exactly the reference's beam search

    # The ban stays a user-visible setting: the model and its saved generation config keep it.
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert saved["no_repeat_ngram_size"] == model.generation_config.no_repeat_ngram_size == 5

    # transformers' own rule (the ban reads the prompt too) breaks the answer at the tag pair.
    monkeypatch.setattr(LLMSRTForConditionalGeneration, "generate", GenerationMixin.generate)
    broken = _answers(model, prompts)
    assert broken[0][: len(answers[0])] != answers[0]
    assert processor.post_process_speech_translation(broken[:1], "srt", "eng", "deu") != [TAGGED]


def test_ngram_repeated_inside_the_answer_is_still_banned(memorized):
    model, _, prompts, answers = memorized
    repeated = _repeated_ngrams(answers[1], 5)
    assert repeated  # what the model learnt to write repeats a 5-gram of its own...
    assert _answers(model, prompts, no_repeat_ngram_size=0)[1] == answers[1]  # ...and writes it without the ban

    generated = _answers(model, prompts)[1]
    assert generated != answers[1]
    assert not _repeated_ngrams(generated, 5)
    assert generated == _from_embeddings(model, prompts)[1]


@pytest.mark.parametrize(
    "options",
    [{"repetition_penalty": 1.5}, {"repetition_penalty": 1.5, "num_beams": 1, "do_sample": True, "top_k": 5}],
    ids=["beam", "sample"],
)
def test_decoding_rules_match_generation_from_embeddings(memorized, options):
    """Same processors in the same order as the reference: beam search and sampling give the same tokens."""
    model, _, prompts, _ = memorized
    torch.manual_seed(1)
    ours = _answers(model, prompts, **options)
    torch.manual_seed(1)
    assert ours == _from_embeddings(model, prompts, **options)


def test_repetition_rules_skip_the_prompt(memorized):
    model, _, _, _ = memorized
    prompt = [10, 11, 12, 13, 14, 15]
    processors = model.answer_logits_processors(len(prompt), no_repeat_ngram_size=5, repetition_penalty=2.0)
    vocab = model.config.text_config.vocab_size

    def scores_after(generated: list[int]) -> torch.Tensor:
        return processors(torch.tensor([prompt + generated]), torch.ones(1, vocab))[0]

    # The answer starts like the prompt: 14 (which ends the prompt's 5-gram 10..14) stays allowed, and only the
    # tokens generated so far are penalised (15 appears in the prompt only).
    scores = scores_after([10, 11, 12, 13])
    assert scores[14] == 1.0 and scores[15] == 1.0 and scores[20] == 1.0
    assert all(scores[token] == 0.5 for token in (10, 11, 12, 13))
    # A 5-gram of the answer itself is banned.
    scores = scores_after([10, 11, 12, 13, 14, 20, 10, 11, 12, 13])
    assert scores[14] == -float("inf") and scores[20] == 0.5 and scores[15] == 1.0


def test_settings_reach_generate_from_every_place_transformers_reads_them(memorized):
    """A keyword argument beats a passed `generation_config`, which beats the model's: as in transformers."""
    model, _, prompts, answers = memorized
    unbanned = _answers(model, prompts, no_repeat_ngram_size=0)[1]
    assert unbanned == answers[1]
    config = copy.deepcopy(model.generation_config)
    config.update(no_repeat_ngram_size=0, max_new_tokens=MAX_NEW_TOKENS)
    with torch.no_grad():
        from_config = model.generate(**prompts, generation_config=config)[:, prompts["input_ids"].shape[1] :]
    assert _until_eos(from_config[1].tolist(), model.generation_config.eos_token_id) == unbanned
    assert model.generation_config.no_repeat_ngram_size == 5 and config.no_repeat_ngram_size == 0  # left as they were


def test_given_ngram_processor_is_kept_as_given(memorized):
    """A `NoRepeatNGramLogitsProcessor` given to `generate` stands in for the setting: transformers' own, whole-
    sequence ban, which breaks the answer at the tag pair."""
    model, _, prompts, answers = memorized
    given = LogitsProcessorList([NoRepeatNGramLogitsProcessor(5)])
    assert _answers(model, prompts, logits_processor=given)[0][: len(answers[0])] != answers[0]


def _one(prompts, index: int) -> dict:
    return {name: value[index : index + 1] for name, value in prompts.items()}


def test_an_answer_draft_changes_the_forward_passes_not_the_answer(memorized):
    """`generate(answer_draft=...)`: transformers' assisted decoding checks the draft's tokens (a live translator's
    previous hypothesis); greedy answers are those decoded without it, whatever the draft, in fewer LLM passes when
    it is right."""
    model, _, prompts, answers = memorized
    passes = []
    hook = model.language_model.register_forward_pre_hook(lambda *_: passes.append(1))
    greedy = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": 5}
    try:
        for index in range(2):
            prompt = _one(prompts, index)
            passes.clear()
            (plain,) = _answers(model, prompt, **greedy)
            plain_passes = len(passes)
            assert plain_passes == len(plain) > 10  # one pass per token
            changed = list(plain[:-1])
            changed[len(changed) // 2] = plain[0] if changed[len(changed) // 2] != plain[0] else plain[1]
            drafts = {"exact": plain[:-1], "changed": changed, "the clip's trained answer": answers[index][:-1],
                      "the other clip's": answers[1 - index][:-1], "truncated": plain[:3]}
            for name, draft in drafts.items():
                passes.clear()
                assert _answers(model, prompt, **greedy, answer_draft=torch.tensor(draft)) == [plain], name
                if name == "exact":
                    assert len(passes) <= -(-len(plain) // 10) + 1 < plain_passes  # 10 tokens checked per pass
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="batch"):
        _answers(model, prompts, **greedy, answer_draft=torch.tensor(answers[0]))


def test_the_draft_generator_proposes_the_continuation_of_the_answer_so_far():
    from llmsrt.answer_decoding import AnswerDraftCandidateGenerator

    draft = torch.tensor([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    generator = AnswerDraftCandidateGenerator(draft, prompt_length=2, num_output_tokens=4, max_length=40,
                                              eos_token_id=torch.tensor([17]))

    def proposed(answer: list[int]) -> list[int]:
        candidates, logits = generator.get_candidates(torch.tensor([[1, 2, *answer]]))
        assert logits is None
        return candidates[0, 2 + len(answer) :].tolist()

    assert proposed([]) == [10, 11, 12, 13]  # the start
    assert proposed([10, 11]) == [12, 13, 14, 15]
    assert proposed([10, 99, 12, 13]) == [14, 15, 16]  # back on the draft after a changed token; stops before eos
    assert proposed([10, 11, 12, 13, 14, 99, 13]) == []  # one token in common is not a match
    assert proposed([11, 12, 13, 14, 15, 16]) == []  # 1 token before eos: too few to repay a wider pass
