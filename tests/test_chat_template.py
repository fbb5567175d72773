"""The chat template of `python -m llmsrt.serving` and the prompts of vLLM requests, without vLLM: both are written by
the folder's processor (its `language_tags` and `prompt_layout`), so a folder converted with `--language_tag zho=cmn`
is prompted `<|cmn|>` by the pipeline, the chat template and the audio endpoints alike. The template is rendered by
transformers' `render_jinja_template` (jinja2, what `apply_chat_template` and vLLM's server run)."""

import jinja2
import pytest
from helpers import CORPUS, make_clip
from transformers import WhisperFeatureExtractor
from transformers.utils.chat_template_utils import render_jinja_template

from llmsrt.processing_llmsrt import LLMSRTProcessor
from llmsrt.serving.chat_template import chat_template
from llmsrt.serving.prompts import request_prompt, speech_to_text_prompt_ids
from llmsrt.testing.tiny import build_tiny_tokenizer

TAGS = {"zho": "cmn"}
CASES = [  # task, src_lang, tgt_lang, gold transcript (smt)
    ("srt", "eng", "zho", None),
    ("srt", "zho", "deu", None),
    ("asr", "zho", None, None),
    ("smt", "deu", "zho", "der zug fährt um neun ab"),
]


def build_processor(**kwargs) -> LLMSRTProcessor:
    feature_extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=5)
    return LLMSRTProcessor(feature_extractor, build_tiny_tokenizer(CORPUS), num_query_tokens=8, **kwargs)


@pytest.fixture(scope="module")
def tagged_folder(tmp_path_factory):
    """A processor with a tag map, saved as a converted folder saves it, and loaded back from the folder."""
    folder = tmp_path_factory.mktemp("tagged")
    build_processor(language_tags=TAGS).save_pretrained(folder)
    return folder, LLMSRTProcessor.from_pretrained(folder)


def render(template: str, content, **kwargs) -> str:
    rendered, _ = render_jinja_template([[{"role": "user", "content": content}]], chat_template=template, **kwargs)
    return rendered[0]


def processor_ids(processor, task, src, tgt, text) -> list[int]:
    clip = make_clip(1.0, seed=0)
    return processor(audio=clip, task=task, src_lang=src, tgt_lang=tgt, text=text)["input_ids"][0].tolist()


def expanded(processor, prompt_ids: list[int]) -> list[int]:
    """What vLLM's multimodal processor makes of a request: each placeholder becomes `num_query_tokens` of them."""
    audio = processor.audio_token_id
    return [i for token in prompt_ids for i in ([audio] * processor.num_query_tokens if token == audio else [token])]


def test_the_template_writes_the_processors_prompt_with_the_folders_tags(tagged_folder):
    folder, processor = tagged_folder
    template = chat_template(folder)
    for task, src, tgt, text in CASES:
        # vLLM hands the template the audio as a content part ("openai" format) or as its placeholder in a string.
        parts = [{"type": "audio"}] + ([{"type": "text", "text": text}] if text else [])
        as_string = processor.audio_token + (text or "")
        for content in (parts, as_string):
            prompt = render(template, content, task=task, src_lang=src, tgt_lang=tgt)
            assert prompt == request_prompt(processor, task, src, tgt, text)
            ids = processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            assert expanded(processor, ids) == processor_ids(processor, task, src, tgt, text)
    assert "<|cmn|>" in render(template, parts, task="srt", src_lang="eng", tgt_lang="zho")
    # MCAT's code for Mandarin names the same language, on the server as in the processor
    assert render(template, parts, task="srt", src_lang="eng", tgt_lang="cmn") == render(
        template, parts, task="srt", src_lang="eng", tgt_lang="zho")
    assert "<|zho|>" not in template


def test_without_languages_the_message_text_is_the_instruction(tagged_folder):
    folder, processor = tagged_folder
    prompt = render(chat_template(folder), [{"type": "audio"}, {"type": "text", "text": "<|eng|><|cmn|>\n"}])
    assert prompt == processor.audio_token + "<|eng|><|cmn|>"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"task": "srt", "src_lang": "xx", "tgt_lang": "deu"}, "src_lang xx"),
        ({"task": "srt", "src_lang": "eng", "tgt_lang": "afr"},
         "tgt_lang.*deu, eng"),
        ({"task": "summarise", "src_lang": "eng", "tgt_lang": "deu"}, "task summarise: accepted are asr, smt, srt"),
        ({"task": "smt", "src_lang": "eng", "tgt_lang": "deu"}, "task smt needs the gold transcript"),
    ],
)
def test_the_template_refuses_what_the_processor_refuses(tagged_folder, kwargs, named):
    folder, _ = tagged_folder
    with pytest.raises(jinja2.TemplateError, match=named):
        render(chat_template(folder), [{"type": "audio"}], **kwargs)


def test_audio_endpoint_prompts_are_the_processors_ids(tagged_folder):
    """`/v1/audio/transcriptions` and `/translations` (ISO 639-1 codes): the ids vLLM's model class sends."""
    _, processor = tagged_folder
    cases = [("transcribe", "zh", None, ("asr", "zho", None)), ("translate", "en", "zh", ("srt", "eng", "zho")),
             ("translate", "zh", None, ("srt", "zho", "eng"))]
    for task_type, language, to_language, (task, src, tgt) in cases:
        ids = speech_to_text_prompt_ids(processor, task_type, language, to_language)
        assert expanded(processor, ids) == processor_ids(processor, task, src, tgt, None)
    assert "<|cmn|>" in processor.tokenizer.decode(speech_to_text_prompt_ids(processor, "transcribe", "zh"))
    with pytest.raises(ValueError, match="'summarise'.*'transcribe' or 'translate'"):
        speech_to_text_prompt_ids(processor, "summarise", "en")
    with pytest.raises(ValueError, match="pass `language`"):
        speech_to_text_prompt_ids(processor, "transcribe", None)


def test_a_layout_with_bos_after_the_audio_reaches_prompt_and_template(tmp_path):
    """The MCAT/Gemma-3 layout `[audio][<bos>][<|src|><|tgt|>]`, read from the saved folder."""
    tokenizer = build_tiny_tokenizer(CORPUS)
    tokenizer.add_special_tokens({"bos_token": "<bos>"})
    processor = LLMSRTProcessor(WhisperFeatureExtractor(feature_size=80, chunk_length=5), tokenizer,
                                num_query_tokens=8, prompt_layout=["audio", "bos", "instruction"])
    processor.save_pretrained(tmp_path)
    loaded = LLMSRTProcessor.from_pretrained(tmp_path)
    assert loaded.prompt_layout == ["audio", "bos", "instruction"]
    ids = processor_ids(loaded, "srt", "eng", "deu", None)
    tags = tokenizer("<|eng|><|deu|>", add_special_tokens=False)["input_ids"]
    assert ids == [loaded.audio_token_id] * 8 + [tokenizer.bos_token_id] + tags
    prompt = render(chat_template(tmp_path), [{"type": "audio"}], task="srt", src_lang="eng", tgt_lang="deu")
    assert expanded(loaded, loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]) == ids


def test_a_layout_is_checked_against_the_tokenizer():
    with pytest.raises(ValueError, match=r"\['audio', 'bos', 'instruction'\].*bos_token is None"):
        build_processor(prompt_layout=["audio", "bos", "instruction"])
    with pytest.raises(ValueError, match=r"prompt_layout \['instruction'\]"):
        build_processor(prompt_layout=["instruction"])
