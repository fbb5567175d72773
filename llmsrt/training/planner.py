"""`llmsrt-plan RECIPE`: what each stage of a recipe needs per GPU, before any GPU is rented.

The model is built from its configs on the meta device (accelerate's `init_empty_weights`: no weights read or
downloaded) and made trainable as the stage makes it (`configure_trainable`: LoRA, the adapter, the frozen parts).
Per GPU, for DDP, FSDP (full shard, the layer classes of an FSDP config wrapped) and DeepSpeed ZeRO-3:

- weights: every parameter at its dtype (the recipe's `model_dtype` for Whisper and the LLM; the adapter and LoRA in
  fp32, as training keeps them); gradients: the trainable ones; optimizer: AdamW's two moments per trainable value;
- activations: what autograd keeps for the backward pass, traced on the meta device at the recipe's batch, audio
  window and text length (`saved_tensors_hooks`: every tensor a training forward saves, once per storage,
  parameters excluded), plus the largest saved tensor again as working memory (its gradient at the start of the
  backward pass), plus the frozen encoder's working set of one layer; with gradient checkpointing, each
  checkpointed layer (LLM decoder and Q-Former layers) keeps its input only and one layer is recomputed at a time;
- sharding: DDP holds everything on every GPU (and its gradient buckets); FSDP shards weights, gradients and
  optimizer state over the GPUs and gathers one wrapped layer at a time (two in flight): the layers of the classes
  the FSDP config wraps (`fsdp_transformer_layer_cls_to_wrap`; by default configs/trainer-fsdp.json's, the one
  train.py's FSDP runs use: the LLM's decoder layers), and the rest (the Whisper encoder, the adapter, the
  embeddings, the output layer) stays gathered in the root unit; ZeRO-3 shards alike and gathers module by module
  (every transformer layer of the encoder, the Q-Former and the LLM).

The model was checked against measured memory of real runs on a CPU (docs/training.md, benchmarks/planner_memory.py,
tests/test_planner.py).
"""

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

import torch
import yaml

from ..configuration_llmsrt import LLMSRTConfig
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from .known_configs import KNOWN_CONFIGS
from .model_setup import configure_trainable
from .recipes import parse_train_args

STRATEGIES = ("ddp", "fsdp", "zero3")  # cheapest first
GIB = 2**30
# Text lengths (tokens) when the recipe does not give them: the prompt's tags and instruction, and one sentence.
PROMPT_TOKENS, TEXT_TOKENS = 16, 48
ENCODER_FRAMES_PER_SECOND = 50
# The FSDP config train.py's sharded runs use (`--fsdp_config`; configs/accelerate/fsdp.yaml wraps the same classes).
FSDP_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "trainer-fsdp.json"


@dataclasses.dataclass
class StageShape:
    """The tensors of one training micro-batch of a stage: `batch` clips of `audio_frames` encoder frames, an LLM
    sequence of `sequence` tokens (`audio_tokens` of them audio) whose last `answer` tokens are scored."""

    batch: int
    audio_frames: int
    audio_tokens: int
    sequence: int
    answer: int
    runs_llm: bool = True


def stage_shape(stage: str, batch: int, audio_frames: int, audio_tokens: int, prompt_tokens: int = PROMPT_TOKENS,
                text_tokens: int = TEXT_TOKENS) -> StageShape:
    """ASR: prompt -> transcript; SMT: prompt with the transcript -> translation; SRT: prompt -> transcript and
    translation; align: the adapter only (no LLM forward)."""
    prompt = audio_tokens + prompt_tokens + (text_tokens if stage == "smt" else 0)
    answer = 2 * text_tokens if stage == "srt" else text_tokens
    return StageShape(batch, audio_frames, audio_tokens, prompt + answer, answer, runs_llm=stage != "align")


# ----- configs ---------------------------------------------------------------------------------------------------

def part_config(name: str | dict | None, given: dict | None = None):
    """The config of a pretrained part and where it came from: a dict given in the recipe's `plan:` block, a local
    folder's config.json, the Hugging Face cache (offline), or llmsrt's table of known shapes."""
    from transformers import CONFIG_MAPPING, AutoConfig

    if given is not None:
        fields = dict(given)
        return CONFIG_MAPPING[fields.pop("model_type")](**fields), "the recipe's plan: block"
    if name is None:
        raise ValueError("The recipe names no pretrained part (whisper/llm) and gives no config in its plan: block.")
    if os.path.isdir(name):
        return AutoConfig.from_pretrained(name), f"{name}/config.json"
    try:
        return AutoConfig.from_pretrained(name, local_files_only=True), f"{name} (Hugging Face cache)"
    except OSError:
        pass
    if name in KNOWN_CONFIGS:
        fields = dict(KNOWN_CONFIGS[name])
        return CONFIG_MAPPING[fields.pop("model_type")](**fields), f"{name} (llmsrt's table of known shapes)"
    raise ValueError(f"No config for {name!r}: not a folder, not in the Hugging Face cache, not among the known shapes "
                     f"({', '.join(sorted(KNOWN_CONFIGS))}). Give one in the recipe: plan: {{llm_config: {{model_type: "
                     "..., hidden_size: ..., ...}}}} (or whisper_config), or a local folder with its config.json.")


def text_side(config):
    """The causal LM config of a multimodal config (Gemma-3's `text_config`), else the config itself."""
    return getattr(config, "text_config", None) or config


def recipe_config(model_args, plan: dict) -> tuple[LLMSRTConfig, dict[str, str]]:
    """The LLM-SRT config a recipe trains, and the source of each part's shapes."""
    if model_args.tiny_model:
        from ..testing.tiny import build_tiny_model_and_processor

        model, _ = build_tiny_model_and_processor(["a stand-in corpus for the tokenizer"],
                                                  num_query_tokens=min(model_args.num_query_tokens, 16))
        return model.config, {"model": "the tiny random model of llmsrt.testing (vocabulary: a stand-in corpus's)"}
    if model_args.model_name_or_path and not model_args.llm:
        return LLMSRTConfig.from_pretrained(model_args.model_name_or_path), {"model": model_args.model_name_or_path}
    whisper, whisper_source = part_config(model_args.whisper, plan.get("whisper_config"))
    llm, llm_source = part_config(model_args.llm, plan.get("llm_config"))
    fields = {"num_query_tokens": model_args.num_query_tokens,
              "query_pooling_stride": model_args.query_pooling_stride,
              "qformer_config": {"num_hidden_layers": model_args.qformer_num_layers},
              "variable_length_encoding": model_args.variable_length_encoding,
              "qformer_attends_padding": model_args.qformer_attends_padding,
              "query_time_window": model_args.query_time_window}
    for name in ("adapter_hidden_size", "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules"):
        if getattr(model_args, name) is not None:
            fields[name] = getattr(model_args, name)
    fields.update(plan.get("config", {}))
    config = LLMSRTConfig(audio_config=whisper.to_dict(), text_config=text_side(llm).to_dict(), **fields)
    return config, {"whisper": whisper_source, "llm": llm_source}


# ----- the model on the meta device ------------------------------------------------------------------------------

def meta_model(config: LLMSRTConfig, parts: list[str], dtype: torch.dtype | None):
    """The stage's model on the meta device: pretrained parts in `dtype`, trainable `parts` as training sets them."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = LLMSRTForConditionalGeneration(config)
    model.tie_weights()  # as loading does (tied input and output embeddings are one parameter)
    if dtype is not None:
        model.audio_encoder.to(dtype)
        model.language_model.to(dtype)
    return configure_trainable(model, parts).train()


@dataclasses.dataclass
class Parameters:
    trainable: int
    frozen: int
    weight_bytes: int
    trainable_bytes: int  # = gradient bytes; AdamW keeps two moments of the same dtype


def count_parameters(model) -> Parameters:
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    size = lambda ps: sum(p.numel() * p.element_size() for p in ps)  # noqa: E731
    return Parameters(sum(p.numel() for p in trainable), sum(p.numel() for p in frozen),
                      size(trainable) + size(frozen), size(trainable))


def inner_model(model) -> LLMSRTForConditionalGeneration:
    """The LLMSRT model inside a peft wrapper (or the model itself)."""
    return model.base_model.model if hasattr(model, "base_model") and hasattr(model, "peft_config") else model


def checkpointed_layers(model) -> list[torch.nn.Module]:
    """The layers gradient checkpointing wraps in training: the LLM's decoder layers and the Q-Former's."""
    inner = inner_model(model)
    decoder = inner.language_model.get_decoder() if hasattr(inner.language_model, "get_decoder") else None
    layers = list(getattr(decoder, "layers", []))
    return layers + list(inner.speech_adapter.qformer.encoder.layer)


def wrapped_layer_classes(fsdp_config: str | Path = FSDP_CONFIG) -> list[str]:
    """The layer classes an FSDP config wraps one by one (`fsdp_transformer_layer_cls_to_wrap`): the Trainer's
    `--fsdp_config` JSON, or an accelerate config (its `fsdp_config:` block)."""
    path = Path(fsdp_config)
    if not path.is_file():
        raise ValueError(f"No FSDP config at {path}: give --fsdp_config, a JSON of the Trainer's --fsdp_config or an "
                         "accelerate config (configs/trainer-fsdp.json, configs/accelerate/fsdp.yaml in llmsrt's "
                         "repository).")
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    names = config.get("fsdp_config", config).get("fsdp_transformer_layer_cls_to_wrap") or []
    names = [name.strip() for name in (names.split(",") if isinstance(names, str) else names)]
    if not names:
        raise ValueError(f"{path} names no fsdp_transformer_layer_cls_to_wrap: the planner models FSDP's "
                         "TRANSFORMER_BASED_WRAP (a list of layer classes, e.g. Qwen2DecoderLayer).")
    return names


def fsdp_units(model, wrapped_classes: list[str]) -> list[torch.nn.Module]:
    """The modules FSDP wraps one by one: those of `wrapped_classes` (the shipped configs: the LLM's decoder
    layers). Everything else (the Whisper encoder, the Q-Former and MLP, the embeddings) is the root unit."""
    return [module for module in model.modules() if type(module).__name__ in wrapped_classes]


def zero3_units(model) -> list[torch.nn.Module]:
    """The largest modules ZeRO-3 gathers one by one (it partitions every parameter, with no wrap list): the
    transformer layers of the encoder, the Q-Former and the LLM."""
    inner = inner_model(model)
    return list(inner.audio_encoder.layers) + checkpointed_layers(model)


@dataclasses.dataclass
class Activations:
    saved: int  # bytes autograd keeps at the end of the forward pass
    largest: int  # the largest of them
    layer_saved: list[int]  # per checkpointed layer: what it saved
    layer_inputs: list[int]  # per checkpointed layer: its input
    encoder_working: int  # the frozen encoder's working set (one layer at a time, no autograd)

    def total(self, checkpointing: bool = False) -> int:
        saved = self.saved
        if checkpointing and self.layer_saved:
            saved += sum(self.layer_inputs) - sum(self.layer_saved) + max(self.layer_saved)
        return max(saved + self.largest, self.encoder_working)


class SavedTensors:
    """`with SavedTensors(model) as saved: <a training forward>`, then `saved.bytes`: what autograd keeps for the
    backward pass (each storage once; the model's parameters excluded), on meta or real tensors alike.
    `saved.layers` holds, per layer of `layers`, its input's and its own saved bytes."""

    def __init__(self, model, layers: list[torch.nn.Module] = ()):
        self.parameters = {p.untyped_storage()._cdata for p in model.parameters()}
        self.storages: dict[int, int] = {}
        self.layers, self._layers, self._handles = {}, list(layers), []

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in self.parameters:
            self.storages[storage._cdata] = storage.nbytes()
        return tensor

    def __enter__(self):
        for index, layer in enumerate(self._layers):
            def before(module, args, kwargs, index=index):
                hidden = args[0] if args else next(iter(kwargs.values()))
                self.layers[index] = [hidden.numel() * hidden.element_size(), -self.bytes]

            def after(module, args, kwargs, output, index=index):
                self.layers[index][1] += self.bytes

            self._handles.append(layer.register_forward_pre_hook(before, with_kwargs=True))
            self._handles.append(layer.register_forward_hook(after, with_kwargs=True))
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        return False


def trace_activations(model, shape: StageShape, dtype: torch.dtype = torch.float32) -> Activations:
    """Run the stage's training forward (adapter, then LLM with the loss on the answer) on meta tensors of `shape`
    and record every tensor autograd saves for the backward pass."""
    inner = inner_model(model)
    audio = inner.config.audio_config
    frames = torch.empty(shape.batch, shape.audio_frames, audio.d_model, device="meta", dtype=dtype)
    with SavedTensors(model, checkpointed_layers(model)) as saved:
        embeddings = inner.speech_adapter(frames, None)[:, : shape.audio_tokens]
        if shape.runs_llm:
            text = inner.language_model.get_input_embeddings().weight
            prompt = torch.empty(shape.batch, shape.sequence - shape.audio_tokens, text.shape[1], device="meta",
                                 dtype=text.dtype)
            inputs = torch.cat([embeddings.to(text.dtype), prompt], dim=1)
            labels = torch.zeros(shape.batch, shape.answer, dtype=torch.long, device="meta")
            inner.language_model(inputs_embeds=inputs, labels=labels, logits_to_keep=shape.answer)
    sizes = list(saved.storages.values())
    layers = [saved.layers[index] for index in sorted(saved.layers)]
    encoder_working = (shape.batch * shape.audio_frames * (audio.encoder_ffn_dim + 4 * audio.d_model)
                       * torch.finfo(dtype).bits // 8)
    return Activations(sum(sizes), max(sizes, default=0), [own for _, own in layers], [given for given, _ in layers],
                       encoder_working)


# ----- memory per GPU --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Memory:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    activations_checkpointed: float
    overhead: float
    root_gather: float = 0.0  # FSDP: what gathering the root unit adds above `weights`, before any activation

    def total(self, checkpointing: bool) -> float:
        activations = self.activations_checkpointed if checkpointing else self.activations
        return self.weights + self.gradients + self.optimizer + max(activations, self.root_gather) + self.overhead


def memory_per_gpu(model, parameters: Parameters, activations: Activations, strategy: str, gpus: int,
                   optimizer_states: int = 2, overhead: float = 0.0,
                   wrapped_classes: list[str] | None = None) -> Memory:
    """Bytes per GPU of `strategy` over `gpus` (see the module's docstring); FSDP wraps the layers of
    `wrapped_classes` (default: those of configs/trainer-fsdp.json)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy takes {', '.join(STRATEGIES)}; got {strategy!r}.")
    weights, gradients = parameters.weight_bytes, parameters.trainable_bytes
    optimizer = optimizer_states * parameters.trainable_bytes
    root_gather = 0
    if strategy == "ddp":
        if gpus > 1:
            gradients *= 2  # the gradients and DDP's flat buckets they are reduced in (one process: no buckets)
    else:
        if strategy == "fsdp":
            modules = fsdp_units(model, wrapped_classes or wrapped_layer_classes())
        else:
            modules = zero3_units(model)
        units = [sum(p.numel() * p.element_size() for p in unit.parameters()) for unit in modules]
        gathered = 2 * max(units, default=0)  # the layer being computed and the one prefetched
        if strategy == "fsdp":
            root = weights - sum(units)
            gathered += root  # the root unit stays gathered
            # FSDP2 gathers a unit into one flat buffer, then copies it into the unit's parameters: at the root's
            # gather (the first, before any activation) it takes twice its size (measured, docs/training.md)
            root_gather = max(0, root - gathered + root)
        weights, gradients, optimizer = weights / gpus + gathered, gradients / gpus, optimizer / gpus
    return Memory(weights, gradients, optimizer, activations.total(False), activations.total(True), overhead,
                  root_gather)


# ----- the plan of a recipe --------------------------------------------------------------------------------------

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, None: None}


def plan_recipe(recipe_path: str, gpus: int = 1, gpu_memory_gb: float = 80.0, strategy: str | None = None,
                step_time: float | None = None, examples: int | None = None, overhead_gb: float = 1.5,
                prompt_tokens: int | None = None, text_tokens: int | None = None, audio_seconds: float | None = None,
                stages: list[str] | None = None, fsdp_config: str | Path = FSDP_CONFIG) -> dict:
    """The plan of every stage of the recipe's curriculum, as a dict (`format_plan` prints it); FSDP wraps the layer
    classes `fsdp_config` names."""
    recipe = yaml.safe_load(Path(recipe_path).read_text(encoding="utf-8")) or {}
    plan = recipe.get("plan") or {}
    model_args, data_args, curriculum_args, training_args, settings = parse_train_args(
        [recipe_path, "--use_cpu", "true", "--bf16", "false", "--output_dir", os.devnull])
    config, sources = recipe_config(model_args, plan)
    wrapped = wrapped_layer_classes(fsdp_config)
    dtype = DTYPES[model_args.model_dtype]
    mixed = bool(recipe.get("bf16") or recipe.get("fp16"))
    activation_dtype = torch.bfloat16 if mixed else (dtype or torch.float32)
    prompt_tokens = prompt_tokens or plan.get("prompt_tokens", PROMPT_TOKENS)
    text_tokens = text_tokens or plan.get("text_tokens", TEXT_TOKENS)
    audio_tokens = plan.get("audio_tokens", config.num_query_tokens // getattr(config, "query_pooling_stride", 1))
    window = config.audio_config.max_source_positions
    if config.variable_length_encoding and not config.qformer_attends_padding:
        seconds = audio_seconds or plan.get("audio_seconds", 30.0)
        frames = min(window, math.ceil(seconds * ENCODER_FRAMES_PER_SECOND))
    else:
        frames = window
    result = {"recipe": recipe_path, "sources": sources, "gpus": gpus, "gpu_memory_gb": gpu_memory_gb,
              "overhead_gb": overhead_gb, "text": {"prompt_tokens": prompt_tokens, "text_tokens": text_tokens,
                                                   "audio_tokens": audio_tokens, "audio_frames": frames},
              "weights_dtype": str(dtype or torch.float32).replace("torch.", ""),
              "activations_dtype": str(activation_dtype).replace("torch.", ""),
              "gradient_checkpointing": bool(recipe.get("gradient_checkpointing")),
              "fsdp_wraps": {"config": os.path.relpath(fsdp_config), "classes": wrapped}, "stages": {}}
    for stage in stages or curriculum_args.curriculum_stages:
        values = settings[stage]
        batch = int(values.get("per_device_train_batch_size", training_args.per_device_train_batch_size))
        accumulation = int(values.get("gradient_accumulation_steps", training_args.gradient_accumulation_steps))
        model = meta_model(config, values["train"], dtype)
        parameters = count_parameters(model)
        shape = stage_shape(stage, batch, frames, audio_tokens, prompt_tokens, text_tokens)
        if mixed:  # autocast computes (and saves) the fp32 adapter's activations in bf16 too
            inner_model(model).speech_adapter.to(activation_dtype)
        activations = trace_activations(model, shape, activation_dtype)
        if mixed:
            inner_model(model).speech_adapter.to(torch.float32)
        memory = {name: memory_per_gpu(model, parameters, activations, name, gpus, overhead=overhead_gb * GIB,
                                       wrapped_classes=wrapped) for name in STRATEGIES}
        fits = {name: {"plain": m.total(False) <= gpu_memory_gb * GIB,
                       "checkpointed": m.total(True) <= gpu_memory_gb * GIB} for name, m in memory.items()}
        cheapest = next((f"{name}" for name in STRATEGIES if fits[name]["plain"]), None) or next(
            (f"{name} + gradient checkpointing" for name in STRATEGIES if fits[name]["checkpointed"]), None)
        entry = {"trained": values["train"], "batch_per_gpu": batch, "gradient_accumulation": accumulation,
                 "shape": dataclasses.asdict(shape), "parameters": dataclasses.asdict(parameters),
                 "memory_gib": {name: {**{k: v / GIB for k, v in dataclasses.asdict(m).items()},
                                       "total": m.total(False) / GIB, "total_checkpointed": m.total(True) / GIB}
                                for name, m in memory.items()},
                 "fits": fits, "cheapest": cheapest or f"none on {gpus} GPU(s) of {gpu_memory_gb:g} GB",
                 "strategy": strategy}
        if cheapest is None:
            entry["gpus_needed"] = minimum_gpus(model, parameters, activations, gpu_memory_gb * GIB,
                                                overhead_gb * GIB, wrapped)
        entry["time"] = stage_time(values, training_args, gpus, batch, accumulation, step_time, examples)
        result["stages"][stage] = entry
    return result


def minimum_gpus(model, parameters, activations, budget: float, overhead: float, wrapped_classes: list[str],
                 most: int = 1024):
    """The fewest GPUs on which a sharded strategy fits, or None."""
    for strategy in ("fsdp", "zero3"):
        gpus = 1
        while gpus <= most:
            memory = memory_per_gpu(model, parameters, activations, strategy, gpus, overhead=overhead,
                                    wrapped_classes=wrapped_classes)
            if memory.total(True) <= budget:
                return {"strategy": f"{strategy} + gradient checkpointing", "gpus": gpus}
            gpus *= 2
    return None


def stage_time(values: dict, training_args, gpus: int, batch: int, accumulation: int, step_time: float | None,
               examples: int | None) -> dict:
    """Optimizer steps of the stage and, from a measured `step_time` (seconds per optimizer step at this batch per
    GPU), its duration; the steps come from `max_steps`, or from `examples` and the epochs."""
    max_steps = int(values.get("max_steps", training_args.max_steps) or -1)
    epochs = float(values.get("num_train_epochs", training_args.num_train_epochs))
    if max_steps > 0:
        steps, basis = max_steps, "max_steps"
    elif examples:
        steps = math.ceil(examples / (batch * accumulation * gpus)) * math.ceil(epochs)
        basis = f"{examples} examples x {epochs:g} epochs / ({batch} x {accumulation} x {gpus} GPUs)"
    else:
        return {"steps": None, "note": "give --examples N (the stage's training examples) or max_steps"}
    timing = {"steps": steps, "basis": basis}
    if step_time:
        timing["hours"] = steps * step_time / 3600
    return timing


def format_plan(plan: dict) -> str:
    lines = [f"Plan of {plan['recipe']} on {plan['gpus']} GPU(s) of {plan['gpu_memory_gb']:g} GB "
             f"(+{plan['overhead_gb']:g} GB per GPU for the CUDA context and allocator)"]
    lines += [f"  shapes of {part}: {source}" for part, source in plan["sources"].items()]
    text = plan["text"]
    lines.append(f"  weights {plan['weights_dtype']}, activations {plan['activations_dtype']}; per clip "
                 f"{text['audio_frames']} encoder frames, {text['audio_tokens']} audio tokens, prompt "
                 f"{text['prompt_tokens']} tokens, a sentence {text['text_tokens']} tokens "
                 f"(recipe's gradient checkpointing: {'on' if plan['gradient_checkpointing'] else 'off'})")
    lines.append(f"  fsdp wraps {', '.join(plan['fsdp_wraps']['classes'])} ({plan['fsdp_wraps']['config']}): the "
                 "rest (encoder, adapter, embeddings) is the root unit, whole on every GPU")
    for stage, entry in plan["stages"].items():
        parameters = entry["parameters"]
        lines.append(f"\n[{stage}] trains {'+'.join(entry['trained'])}: {parameters['trainable'] / 1e6:,.1f} M "
                     f"trainable, {parameters['frozen'] / 1e6:,.1f} M frozen; batch {entry['batch_per_gpu']}/GPU, "
                     f"sequence {entry['shape']['sequence']} tokens")
        lines.append(f"  {'GiB per GPU':<12}{'weights':>9}{'grads':>8}{'optim':>8}{'activ.':>9}{'act.+ckpt':>10}"
                     f"{'total':>9}{'+ckpt':>9}  fits")
        shown = [entry["strategy"]] if entry["strategy"] else STRATEGIES
        for name in shown:
            m, fits = entry["memory_gib"][name], entry["fits"][name]
            verdict = "yes" if fits["plain"] else "with checkpointing" if fits["checkpointed"] else "no"
            lines.append(f"  {name:<12}{m['weights']:>9.1f}{m['gradients']:>8.1f}{m['optimizer']:>8.1f}"
                         f"{m['activations']:>9.1f}{m['activations_checkpointed']:>10.1f}{m['total']:>9.1f}"
                         f"{m['total_checkpointed']:>9.1f}  {verdict}")
        if any(name != "ddp" for name in shown):
            lines.append("  (fsdp: FSDP2 through the Trainer on CPU processes measured 20% below it; zero3: not "
                         "measured; docs/training.md)")
        lines.append(f"  cheapest that fits: {entry['cheapest']}")
        if entry.get("gpus_needed"):
            lines.append(f"  fits with {entry['gpus_needed']['strategy']} on {entry['gpus_needed']['gpus']} GPUs")
        timing = entry["time"]
        if timing.get("steps") is None:
            lines.append(f"  time: {timing['note']}")
        else:
            hours = f"{timing['hours']:.1f} h" if "hours" in timing else "give --step_time S for hours"
            lines.append(f"  time: {timing['steps']:,} steps ({timing['basis']}): {hours}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="llmsrt-plan", description="GPUs, memory and time each stage of a recipe "
                                     "needs (parameters, memory per GPU by strategy, with and without gradient "
                                     "checkpointing). Nothing is downloaded: the model is built on the meta device.")
    parser.add_argument("recipe")
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--gpu_memory", type=float, default=80.0, help="GB per GPU (default 80: an H100/A100-80GB).")
    parser.add_argument("--strategy", choices=STRATEGIES, help="Show this strategy only (default: all three).")
    parser.add_argument("--step_time", type=float, help="Measured seconds per optimizer step at the recipe's batch.")
    parser.add_argument("--examples", type=int, help="Training examples of each stage (for the steps of an epoch).")
    parser.add_argument("--overhead", type=float, default=1.5, help="GB per GPU beyond the model (CUDA context...).")
    parser.add_argument("--text_tokens", type=int, help=f"Tokens of one sentence (default {TEXT_TOKENS}).")
    parser.add_argument("--prompt_tokens", type=int, help=f"Tokens of the prompt's text (default {PROMPT_TOKENS}).")
    parser.add_argument("--audio_seconds", type=float, help="Longest clip of a batch (variable-length encoding).")
    parser.add_argument("--stages", nargs="+", help="Stages to plan (default: the recipe's curriculum).")
    parser.add_argument("--fsdp_config", default=FSDP_CONFIG, help="The FSDP config whose layer classes FSDP wraps "
                        "(the Trainer's JSON or an accelerate YAML; default configs/trainer-fsdp.json).")
    parser.add_argument("--json", action="store_true", help="Print the plan as JSON.")
    args = parser.parse_args(argv)
    if args.gpus < 1 or args.gpu_memory <= 0:
        parser.error("--gpus must be >= 1 and --gpu_memory > 0.")
    plan = plan_recipe(args.recipe, args.gpus, args.gpu_memory, args.strategy, args.step_time, args.examples,
                       args.overhead, args.prompt_tokens, args.text_tokens, args.audio_seconds, args.stages,
                       args.fsdp_config)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    return plan


if __name__ == "__main__":
    main()
