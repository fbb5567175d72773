"""How an LLM-SRT model is stored and assembled: from a pretrained Whisper and a pretrained causal LM
(`from_pretrained_parts`), and as a saved folder, complete or changes-only.

A changes-only folder (`save_pretrained(..., changed_only=True)`, `config.stored_weights == "changed"`) stores only
the tensors that differ from the pretrained parts its config names (`audio_model_name`, `text_model_name`): the
speech adapter, and LoRA merged into the LLM or any other trained weight. `from_pretrained` rebuilds the parts and
loads the folder's tensors over them. `LLMSRTStorageMixin` gives `LLMSRTForConditionalGeneration` these methods;
the architecture itself is in `modeling_llmsrt.py`.
"""

import copy
import os
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedConfig
from transformers.generation import GenerationConfig

from .configuration_llmsrt import LLMSRTConfig

# Arguments of `from_pretrained` that say where a folder is (also used to read a changes-only folder's files).
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
# The ones that also reach the pretrained parts a changes-only folder names (`revision`, `subfolder`: the folder's).
PART_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token")
# Arguments of `from_pretrained` that a changes-only folder cannot take, and why.
CHANGES_ONLY_REFUSED = {
    "state_dict": "its weights are the recorded parts with the folder's tensors on top; load a complete folder.",
    "gguf_file": "the folder is not a GGUF file (its config names the GGUF file of its LLM, if any).",
}

AUTO_MAP = {
    "AutoConfig": "configuration_llmsrt.LLMSRTConfig",
    "AutoModel": "modeling_llmsrt.LLMSRTForConditionalGeneration",
    "AutoModelForSpeechSeq2Seq": "modeling_llmsrt.LLMSRTForConditionalGeneration",
}


def part_name(name_or_path: str | os.PathLike) -> str:
    """How the config records a pretrained part: a Hub id as given, a local folder as an absolute path (a
    changes-only folder is loaded on top of it from any working directory)."""
    path = Path(name_or_path)
    return str(path.resolve()) if path.is_dir() else str(name_or_path)


def load_pretrained_parts(
    whisper: str,
    llm: str,
    gguf_file: str | None = None,
    dtype: torch.dtype | str | None = None,
    download_kwargs: dict | None = None,
) -> tuple[nn.Module, nn.Module]:
    """A pretrained `WhisperModel` and causal LM (a GGUF file is de-quantized into a plain model); `download_kwargs`
    (`cache_dir`, `token`, `local_files_only`, ...) reach both."""
    from transformers import WhisperModel

    download_kwargs = download_kwargs or {}
    whisper_model = WhisperModel.from_pretrained(whisper, dtype=dtype, **download_kwargs)
    language_model = AutoModelForCausalLM.from_pretrained(llm, gguf_file=gguf_file, dtype=dtype, **download_kwargs)
    if gguf_file is not None:
        # A GGUF-loaded model keeps its quantizer and refuses `save_pretrained`: copy it into a plain model.
        language_model.config.quantization_config = None
        language_model = without_quantizer(language_model)
    return whisper_model, text_causal_lm(language_model)


def text_causal_lm(language_model: nn.Module) -> nn.Module:
    """The text-only causal LM inside what `AutoModelForCausalLM` loaded: the model itself when its config is a
    text config; for a multimodal model (a `Gemma3ForConditionalGeneration` folder, as MCAT's `gemma-3-27b-it`), the
    causal LM of its text config holding the same decoder and LM head modules (the vision tower is left out: it never
    sees audio). Refuses a model whose text decoder or head cannot be found."""
    text_config = language_model.config.get_text_config()
    if text_config is language_model.config:
        return language_model
    decoder, head = language_model.get_decoder(), language_model.get_output_embeddings()
    with torch.device("meta"):
        text_model = AutoModelForCausalLM.from_config(text_config, dtype=language_model.dtype)
    if type(decoder) is not type(text_model.get_decoder()) or head is None:
        raise ValueError(
            f"{type(language_model).__name__} holds a {type(decoder).__name__} decoder, not the "
            f"{type(text_model.get_decoder()).__name__} that {type(text_model).__name__} (its text config's causal LM) "
            "needs: llmsrt reads decoder-only LLMs and multimodal models whose text side is one."
        )
    setattr(text_model, text_model.base_model_prefix, decoder)  # the causal LM's own decoder (`model`)
    text_model.set_output_embeddings(head)
    if text_model.get_decoder() is not decoder or any(p.is_meta for p in text_model.parameters()):
        raise ValueError(f"Could not move the text decoder of {type(language_model).__name__} into "
                         f"{type(text_model).__name__}.")
    text_model.generation_config = language_model.generation_config
    return text_model


def without_quantizer(language_model: nn.Module) -> nn.Module:
    """The same weights in a plain model of the same class (built on the meta device: no random initialisation)."""
    with torch.device("meta"):
        plain_model = AutoModelForCausalLM.from_config(language_model.config, dtype=language_model.dtype)
    plain_model.load_state_dict(language_model.state_dict(), assign=True)
    for name, buffer in language_model.named_buffers():  # non-persistent buffers (rotary frequencies)
        module_name, _, buffer_name = name.rpartition(".")
        plain_model.get_submodule(module_name)._buffers[buffer_name] = buffer
    if plain_model.config.tie_word_embeddings:
        plain_model.tie_weights()
    return plain_model


class LLMSRTStorageMixin:
    """`from_pretrained` / `save_pretrained` for every folder llmsrt writes, and assembly from pretrained parts.
    Mixed into `LLMSRTForConditionalGeneration` ahead of `PreTrainedModel` (whose methods it extends)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, with the arguments it takes (`dtype`, `device_map`, `attn_implementation`,
        `quantization_config`, config overrides, ...), for every folder llmsrt writes. A changes-only folder
        (`config.stored_weights == "changed"`, written by `save_pretrained(..., changed_only=True)`) is read as the
        pretrained parts its config names with the folder's tensors on top, and that complete state dict goes
        through transformers' own loading, so each argument acts as on a complete folder. The Whisper encoder comes
        back frozen either way."""
        hub_kwargs = {name: kwargs[name] for name in HUB_KWARGS if name in kwargs}
        config = kwargs.get("config")
        if config is None or isinstance(config, (str, os.PathLike)):
            config = LLMSRTConfig.from_pretrained(config or pretrained_model_name_or_path, **hub_kwargs)
        if getattr(config, "stored_weights", "all") == "changed":
            model = cls._from_changes(pretrained_model_name_or_path, config, *args, **kwargs)
        else:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model.freeze_audio_encoder()
        return model

    @classmethod
    def _from_changes(cls, folder, folder_config: LLMSRTConfig, *args, **kwargs) -> "LLMSRTStorageMixin":
        """A changes-only folder: the parts named in `folder_config` (read in its `parts_dtype`) with the folder's
        tensors over them, loaded by `PreTrainedModel.from_pretrained(None, state_dict=...)` with `kwargs`."""
        for name, reason in CHANGES_ONLY_REFUSED.items():
            if kwargs.get(name) is not None:
                raise ValueError(f"`{name}` cannot be used with the changes-only folder {folder}: {reason}")
        hub_kwargs = {name: kwargs.pop(name) for name in HUB_KWARGS if name in kwargs}
        part_kwargs = {name: value for name, value in hub_kwargs.items() if name in PART_HUB_KWARGS}
        dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        dtype = dtype if dtype is not None else torch_dtype
        state_dict = cls._changes_on_parts(folder, folder_config, hub_kwargs, part_kwargs)
        if not isinstance(kwargs.get("config"), PreTrainedConfig):
            # transformers reads the folder's config and splits config overrides from loading arguments.
            kwargs["config"] = os.fspath(kwargs.get("config") or folder)
        load_generation_config = "generation_config" not in kwargs
        model = super().from_pretrained(
            None, *args, state_dict=state_dict, dtype=dtype or folder_config.parts_dtype, **hub_kwargs, **kwargs
        )
        model.config.stored_weights, model.config.parts_dtype = "all", None  # in memory, the model is complete
        if load_generation_config:
            try:
                model.generation_config = GenerationConfig.from_pretrained(folder, **hub_kwargs)
            except OSError:
                pass  # no saved generation config: the paper's defaults, set in __init__, stay
        return model

    @classmethod
    def _changes_on_parts(cls, folder, config: LLMSRTConfig, hub_kwargs: dict, part_kwargs: dict) -> dict:
        """The complete state dict of a changes-only folder: the recorded parts' tensors, the folder's over them."""
        from safetensors.torch import load_file
        from transformers.utils import SAFE_WEIGHTS_NAME, cached_file

        parts = cls._from_recorded_parts(type(config).from_dict(config.to_dict()), config.parts_dtype, part_kwargs)
        state_dict = parts.state_dict()
        changes = load_file(cached_file(folder, SAFE_WEIGHTS_NAME, **hub_kwargs))
        unexpected = sorted(name for name in changes if name not in state_dict)
        if unexpected:
            raise ValueError(f"{folder} stores tensors the model does not have: {unexpected[:5]}.")
        state_dict.update(changes)
        return state_dict

    @classmethod
    def from_pretrained_parts(
        cls,
        whisper: str,
        llm: str,
        audio_token_id: int,
        gguf_file: str | None = None,
        dtype: torch.dtype | str | None = None,
        **config_kwargs,
    ) -> "LLMSRTStorageMixin":
        """Build a model from a pretrained Whisper and a pretrained causal LM, with a freshly initialised adapter.

        Args:
            whisper: Hub id or local folder of a Whisper checkpoint (only its encoder is kept).
            llm: Hub id or local folder of a causal LM (Qwen2.5 in the paper).
            audio_token_id: id of the processor's audio placeholder in the LLM's tokenizer
                (`LLMSRTProcessor.audio_token_id`); embeddings are resized when it lies outside the vocabulary.
            gguf_file: a GGUF file inside `llm`, loaded (and de-quantized) by transformers.
            dtype: dtype of the pretrained parts; the adapter stays in float32.
            config_kwargs: further `LLMSRTConfig` fields (`num_query_tokens`, `qformer_config`, LoRA settings...).
        """
        whisper_model, language_model = load_pretrained_parts(whisper, llm, gguf_file, dtype)
        text_config = language_model.config.to_dict()
        text_config.pop("quantization_config", None)
        config = LLMSRTConfig(
            audio_config=whisper_model.config.to_dict(),
            text_config=text_config,
            audio_token_id=audio_token_id,
            audio_model_name=part_name(whisper),
            text_model_name=part_name(llm),
            text_model_gguf_file=gguf_file,
            **config_kwargs,
        )
        return cls._assemble(config, whisper_model, language_model)

    @classmethod
    def _assemble(cls, config: LLMSRTConfig, whisper_model: nn.Module, language_model: nn.Module):
        """The model of `config` holding the parts' weights and a freshly initialised adapter."""
        with torch.device("meta"):
            model = cls(config)
        # Whisper's weights in llmsrt's encoder class (which can also read clips shorter than the window).
        model.audio_encoder.load_state_dict(whisper_model.get_encoder().state_dict(), assign=True)
        model.language_model = language_model
        model.speech_adapter = type(model.speech_adapter)(config)  # a fresh adapter of the model's class
        for module in model.speech_adapter.modules():
            model._init_weights(module)
        audio_token_id = config.audio_token_id
        if audio_token_id >= model.get_input_embeddings().num_embeddings:
            # The placeholder's own rows are never used: placeholders are embedded as id 0 and then replaced, and
            # generation suppresses the id. Zero them rather than leave whatever the resize put there.
            old_size = model.get_input_embeddings().num_embeddings
            model.language_model.resize_token_embeddings(audio_token_id + 1, mean_resizing=False)
            with torch.no_grad():
                model.get_input_embeddings().weight[old_size:] = 0
                model.get_output_embeddings().weight[old_size:] = 0
            model.config.text_config.vocab_size = model.language_model.config.vocab_size
        model.freeze_audio_encoder()
        return model

    @classmethod
    def _from_recorded_parts(
        cls, config: LLMSRTConfig, dtype: torch.dtype | str | None, download_kwargs: dict | None = None
    ):
        """Rebuild the pretrained parts that `config` names (a new adapter): the base of a changes-only folder."""
        if not (config.audio_model_name and config.text_model_name):
            raise ValueError(
                "A changes-only folder needs the pretrained parts the model was built from, but its config names "
                f"audio_model_name={config.audio_model_name!r}, text_model_name={config.text_model_name!r}: build "
                "the model with `from_pretrained_parts`, or save a complete folder (`changed_only=False`)."
            )
        whisper_model, language_model = load_pretrained_parts(
            config.audio_model_name, config.text_model_name, config.text_model_gguf_file, dtype, download_kwargs
        )
        return cls._assemble(config, whisper_model, language_model)

    def changed_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that differ from the pretrained parts named in the config (always the whole speech adapter and
        language-ID head, which no part has): what a changes-only folder stores. Rebuilds the parts once to compare
        (about one more model in memory)."""
        base = type(self)._from_recorded_parts(copy.deepcopy(self.config), self.language_model.dtype).state_dict()
        changed = {}
        for name, tensor in self.state_dict().items():
            reference = base.get(name)
            if reference is None or reference.shape != tensor.shape or reference.dtype != tensor.dtype:
                found = None if reference is None else (tuple(reference.shape), reference.dtype)
                raise ValueError(
                    f"{name} {tuple(tensor.shape)} {tensor.dtype} has no counterpart in the pretrained parts "
                    f"(found {found}): this model cannot be stored as changes on top of them; save a complete "
                    "folder (`changed_only=False`)."
                )
            if name.startswith(("speech_adapter.", "language_id_head.")) or not torch.equal(tensor, reference):
                changed[name] = tensor
        return changed


    def save_pretrained(self, save_directory, *args, changed_only: bool = False, **kwargs):
        """Save weights and config; with the classes registered for Auto (as `import llmsrt` does), also the code
        files, an `auto_map` for AutoConfig/AutoModel/AutoModelForSpeechSeq2Seq and the speech-translation pipeline.

        With `changed_only=True`, the folder stores only the tensors that differ from the pretrained parts the
        config names (`audio_model_name`, `text_model_name`): the speech adapter, and LoRA merged into the LLM or
        any other trained weight. `from_pretrained`, `AutoModel` and the pipeline load it as a complete model as
        long as those parts can be loaded (a Hub id, or a folder that stays where it was).
        """
        if getattr(self, "_auto_class", None) is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        if changed_only:
            if kwargs.get("state_dict") is not None:
                raise ValueError("Pass either state_dict or changed_only=True to save_pretrained, not both.")
            kwargs["state_dict"] = self.changed_state_dict()
        stored, parts_dtype = self.config.stored_weights, self.config.parts_dtype
        self.config.stored_weights = "changed" if changed_only else "all"
        self.config.parts_dtype = str(self.language_model.dtype).removeprefix("torch.") if changed_only else None
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.stored_weights, self.config.parts_dtype = stored, parts_dtype
        pipeline_file = Path(__file__).with_name("pipeline_llmsrt.py")
        if getattr(self, "_auto_class", None) is not None and pipeline_file.exists():
            from transformers.dynamic_module_utils import get_relative_import_files

            # The pipeline and the siblings it imports (segmentation.py, ...).
            for source in [pipeline_file, *map(Path, get_relative_import_files(str(pipeline_file)))]:
                shutil.copyfile(source, Path(save_directory) / source.name)


__all__ = ["LLMSRTStorageMixin", "load_pretrained_parts", "part_name", "without_quantizer"]
