"""llmsrt-plan: its parameter counts, optimizer state and activation memory against a real training step of the tiny
model on the CPU, and its table for the paper recipes (shapes from llmsrt's table: nothing downloaded)."""

from pathlib import Path

import pytest
import torch
import yaml
from helpers import CORPUS, make_clip
from transformers import TrainingArguments

from llmsrt.data import CurriculumCollator
from llmsrt.diagnostics.audio_gain import first_answer_logit
from llmsrt.testing import build_tiny_model_and_processor
from llmsrt.training import LLMSRTTrainer, parse_train_args
from llmsrt.training.model_setup import configure_trainable
from llmsrt.training.planner import (
    Activations,
    SavedTensors,
    StageShape,
    checkpointed_layers,
    count_parameters,
    fsdp_units,
    inner_model,
    main,
    memory_per_gpu,
    meta_model,
    recipe_config,
    trace_activations,
    wrapped_layer_classes,
)

ROOT = Path(__file__).resolve().parents[1]
# The activation model against autograd's saved tensors in a real step (measured: +5% to +8%; docs/training.md).
ACTIVATION_TOLERANCE = 0.10
STAGE_PARTS = {"asr": ["adapter"], "srt": ["adapter", "lora"], "full": ["adapter", "llm"]}


def real_step(parts: list[str], tmp_path, batch_size: int = 3):
    """A real training step of the tiny model (the Trainer's loss), measuring what autograd saves."""
    model, processor = build_tiny_model_and_processor(CORPUS)
    model = configure_trainable(model, parts).train()
    examples = [{"id": str(n), "audio": {"array": make_clip(5.0, seed=n), "sampling_rate": 16000},
                 "src_lang": "eng", "tgt_lang": "deu", "transcript": CORPUS[n], "translation": CORPUS[n + 1]}
                for n in range(batch_size)]
    batch = CurriculumCollator(processor, task="srt")(examples)
    trainer = LLMSRTTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                report_to="none"))
    with SavedTensors(model) as saved:
        loss = trainer.compute_loss(model, batch)
    answer = batch["labels"].shape[1] - first_answer_logit(batch["labels"])
    shape = StageShape(batch_size, audio_frames=model.config.audio_config.max_source_positions,
                       audio_tokens=model.config.num_query_tokens, sequence=batch["input_ids"].shape[1],
                       answer=answer)
    return model, loss, saved.bytes, shape


@pytest.mark.parametrize("stage", list(STAGE_PARTS))
def test_parameters_optimizer_and_activations_match_a_real_step(stage, tmp_path):
    model, loss, measured, shape = real_step(STAGE_PARTS[stage], tmp_path)
    planned_model = meta_model(model.config if not hasattr(model, "peft_config") else model.base_model.model.config,
                               STAGE_PARTS[stage], None)
    planned = count_parameters(planned_model)
    assert planned == count_parameters(model)  # trainable, frozen and their bytes, exactly
    loss.backward()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    optimizer.step()
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if t.dim())
    memory = memory_per_gpu(planned_model, planned, trace_activations(planned_model, shape), "ddp", 1)
    assert memory.optimizer == state
    predicted = trace_activations(planned_model, shape).saved
    assert abs(predicted - measured) <= ACTIVATION_TOLERANCE * measured, (predicted, measured)


def test_checkpointing_keeps_layer_inputs_only():
    model, _ = build_tiny_model_and_processor(CORPUS)
    planned = meta_model(model.config, ["adapter", "lora"], None)
    shape = StageShape(4, 250, 8, 60, 20)
    activations = trace_activations(planned, shape)
    layers = checkpointed_layers(planned)
    assert len(activations.layer_saved) == len(layers) == 4  # 2 LLM decoder layers, 2 Q-Former layers
    assert activations.total(True) < activations.total(False)
    assert all(own > given for own, given in zip(activations.layer_saved, activations.layer_inputs))


def test_sharding_divides_the_state_over_the_gpus():
    model, _ = build_tiny_model_and_processor(CORPUS)
    planned = meta_model(model.config, ["adapter", "lora"], None)
    parameters = count_parameters(planned)
    activations = trace_activations(planned, StageShape(2, 250, 8, 40, 10))
    one, four = (memory_per_gpu(planned, parameters, activations, "zero3", gpus) for gpus in (1, 4))
    assert four.optimizer == one.optimizer / 4 and four.gradients == one.gradients / 4
    assert four.weights < one.weights and four.activations == one.activations
    with pytest.raises(ValueError, match="ddp, fsdp, zero3; got 'zero2'"):
        memory_per_gpu(planned, parameters, activations, "zero2", 1)


def test_fsdp_plan_holds_the_root_unit_twice_while_gathering_it():
    """FSDP2 gathers the root unit into a flat buffer and copies it into the parameters (the demo model: +2.18 GiB
    peak for a 1.09 GiB root, docs/training.md): with no activations, a plan is at least the shards plus twice the
    root; with activations larger than that gather, the activations count instead. The demo recipe's shapes (from
    llmsrt's table): its root unit (the embeddings, the adapter) outweighs two layers."""
    model_args, *_ = parse_train_args([str(ROOT / "recipes" / "demo.yaml"), "--use_cpu", "true", "--output_dir", "x"])
    planned = meta_model(recipe_config(model_args, {})[0], ["adapter", "lora"], None)
    parameters = count_parameters(planned)
    units = fsdp_units(planned, wrapped_layer_classes())
    root = parameters.weight_bytes - sum(sum(p.numel() * p.element_size() for p in unit.parameters()) for unit in units)
    none = Activations(0, 0, [], [], 0)
    fsdp = memory_per_gpu(planned, parameters, none, "fsdp", 2)
    state = parameters.weight_bytes / 2 + fsdp.gradients + fsdp.optimizer
    largest_layer = max(sum(p.numel() * p.element_size() for p in unit.parameters()) for unit in units)
    assert root > 2 * largest_layer and fsdp.total(False) >= state + 2 * root
    large = Activations(10 * root, 0, [], [], 0)
    assert memory_per_gpu(planned, parameters, large, "fsdp", 2).total(False) == fsdp.weights + fsdp.gradients + \
        fsdp.optimizer + 10 * root


def parameter_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_fsdp_plan_wraps_what_the_shipped_config_wraps():
    """train.py's FSDP runs wrap the LLM's decoder layers only (configs/trainer-fsdp.json; the accelerate config
    alike): the frozen Whisper-large-v3 encoder and the Q-Former sit in the root unit, whole on every GPU. The paper's
    3B recipe on 4 GPUs: what FSDP keeps gathered per GPU holds the whole encoder and adapter."""
    wrapped = wrapped_layer_classes()
    assert wrapped == wrapped_layer_classes(ROOT / "configs" / "accelerate" / "fsdp.yaml")
    model_args, *_ = parse_train_args([str(ROOT / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml"), "--use_cpu", "true",
                                       "--output_dir", "x"])
    config = recipe_config(model_args, {})[0]
    planned = meta_model(config, ["adapter", "lora"], torch.bfloat16)
    units = fsdp_units(planned, wrapped)
    assert [type(unit).__name__ for unit in units] == ["Qwen2DecoderLayer"] * config.text_config.num_hidden_layers
    inner = inner_model(planned)
    encoder, adapter = parameter_bytes(inner.audio_encoder), parameter_bytes(inner.speech_adapter)
    assert encoder > 1.2e9  # 635 M parameters in bf16
    parameters = count_parameters(planned)
    none = Activations(0, 0, [], [], 0)
    fsdp = memory_per_gpu(planned, parameters, none, "fsdp", 4, wrapped_classes=wrapped)
    gathered = fsdp.weights - parameters.weight_bytes / 4
    assert gathered >= encoder + adapter + 2 * max(parameter_bytes(unit) for unit in units)
    assert fsdp.root_gather >= 2 * (encoder + adapter) - gathered  # the root's gather: twice the root, encoder included
    with pytest.raises(ValueError, match="No FSDP config at"):
        wrapped_layer_classes(ROOT / "configs" / "missing.json")


def test_paper_recipe_plan_from_known_shapes(tmp_path, capsys):
    """The 3B recipe's parts come from the table of known shapes (the Hub is never asked); 32B does not fit one GPU
    with DDP; a config dict in the recipe's plan: block is used as given."""
    plan = main([str(ROOT / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml"), "--stages", "srt", "--step_time", "2",
                 "--examples", "1600"])
    assert "known shapes" in plan["sources"]["llm"]
    srt = plan["stages"]["srt"]
    assert 3.0e9 < srt["parameters"]["frozen"] < 4.0e9 and srt["cheapest"] == "ddp"
    assert srt["time"]["steps"] == 200 * 10 and srt["time"]["hours"] == pytest.approx(2000 * 2 / 3600)
    assert "[srt] trains adapter+lora" in capsys.readouterr().out
    recipe = yaml.safe_load((ROOT / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml").read_text())
    recipe.update(llm="my/unreleased-llm", plan={"llm_config": {"model_type": "qwen2", "vocab_size": 1000,
                                                               "hidden_size": 256, "intermediate_size": 512,
                                                               "num_hidden_layers": 2, "num_attention_heads": 4,
                                                               "num_key_value_heads": 2}})
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(recipe))
    plan = main([str(path), "--stages", "asr", "--gpus", "2", "--strategy", "fsdp"])
    assert plan["sources"]["llm"] == "the recipe's plan: block"
    assert plan["stages"]["asr"]["parameters"]["frozen"] < 0.7e9  # whisper-large-v3's encoder + a small LLM
    recipe.pop("plan")
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ValueError, match="No config for 'my/unreleased-llm'"):
        main([str(path), "--stages", "asr"])
