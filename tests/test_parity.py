"""Rows of the parity table ("Parity with the reference", in PARITY_TABLE) that no other test pins: each test names
the element it checks."""

from pathlib import Path

import torch
from helpers import CORPUS, SAMPLING_RATE, make_clip
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from llmsrt import LLMSRTConfig
from llmsrt.evaluation.scoring import score_records
from llmsrt.testing import build_tiny_model_and_processor

ROOT = Path(__file__).resolve().parents[1]
PARITY_TABLE = ROOT / "docs" / "parity.md"


def test_qformer_is_blip2_defaults_with_8_layers_and_cross_attention_on_every_second_layer():
    config = LLMSRTConfig().qformer_config
    defaults = Blip2QFormerConfig()
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (768, 12, 3072)
    assert config.num_hidden_layers == 8 and config.encoder_hidden_size == 1280  # whisper-large-v3's width
    for name in ("hidden_size", "num_attention_heads", "intermediate_size", "cross_attention_frequency",
                 "layer_norm_eps", "hidden_act", "max_position_embeddings"):
        assert getattr(config, name) == getattr(defaults, name), name
    small = Blip2QFormerConfig(hidden_size=48, intermediate_size=64, num_hidden_layers=8, encoder_hidden_size=32,
                               cross_attention_frequency=config.cross_attention_frequency)
    layers = Blip2QFormerModel(small).encoder.layer
    assert [index for index, layer in enumerate(layers) if layer.has_cross_attention] == [0, 2, 4, 6]


def test_queries_are_80_of_the_qformer_width_initialised_from_a_standard_normal():
    config = LLMSRTConfig()
    assert config.num_query_tokens == 80
    model, _ = build_tiny_model_and_processor(CORPUS, num_query_tokens=80)
    queries = model.speech_adapter.query_tokens
    assert queries.shape == (1, 80, model.config.qformer_config.hidden_size)
    assert abs(queries.mean().item()) < 0.1 and abs(queries.std().item() - 1.0) < 0.1


def test_projector_layer_norm_has_eps_1e_5_and_unit_gain():
    model, _ = build_tiny_model_and_processor(CORPUS)
    norm = model.speech_adapter.projector.layer_norm
    assert LLMSRTConfig().adapter_layer_norm_eps == norm.eps == 1e-5
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_the_encoder_reads_the_30_second_window_by_default():
    """The reference pads every clip to 30 s; variable-length encoding is an opt-in departure."""
    _, processor = build_tiny_model_and_processor(CORPUS)
    assert LLMSRTConfig().variable_length_encoding is False
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE)
    assert batch["input_features"].shape[-1] == processor.feature_extractor.nb_max_frames  # the whole window


def test_comet_reads_the_gold_transcription_as_source():
    record = {"id": "1", "direction": "eng-deu", "src_lang": "eng", "tgt_lang": "deu",
              "ref_transcription": "the train leaves", "hyp_transcription": "a train leaves",
              "ref_translation": "der zug fährt", "hyp_translation": "ein zug fährt"}
    seen = []

    def comet(sources, hypotheses, references):
        seen.append((sources, hypotheses, references))
        return 0.5

    results = score_records([record], comet=comet)
    assert seen == [(["the train leaves"], ["ein zug fährt"], ["der zug fährt"])]
    assert results["directions"]["eng-deu"]["comet"] == 0.5


def test_the_paper_recipe_keeps_the_reference_sizes_and_the_demo_departs():
    """The paper's recipe, as train.py parses it, builds the reference's sizes and its reading of the window; the
    demo trains small parts, fewer queries and layers, a query time window and variable-length encoding."""
    from llmsrt.training.recipes import parse_train_args

    paper = parse_train_args([str(ROOT / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml"), "--bf16", "false"])[0]
    assert (paper.whisper, paper.llm) == ("openai/whisper-large-v3", "Qwen/Qwen2.5-3B")
    assert (paper.num_query_tokens, paper.qformer_num_layers, paper.query_time_window) == (80, 8, None)
    assert paper.qformer_attends_padding is True and paper.variable_length_encoding is False
    for recipe in ("demo.yaml", "demo-long.yaml"):
        demo = parse_train_args([str(ROOT / "recipes" / recipe)])[0]
        assert (demo.whisper, demo.llm) == ("openai/whisper-base", "Qwen/Qwen2.5-0.5B-Instruct")
        assert demo.num_query_tokens < 80 and demo.qformer_num_layers < 8 and demo.query_time_window is not None
        assert demo.variable_length_encoding is True and demo.qformer_attends_padding is False


def test_every_test_the_parity_table_names_exists():
    import ast
    import re

    table = PARITY_TABLE.read_text(encoding="utf-8").split("## Parity with the reference", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?", table)
    assert len(named) >= 20
    for file, test in named:
        tree = ast.parse((ROOT / "tests" / file).read_text(encoding="utf-8"))
        assert not test or test in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, test
