"""The converter of the LLM-SRT authors' checkpoints: a checkpoint written in the reference's layout, from a
reference adapter assembled here from transformers' `Blip2QFormerModel` + `nn.Linear` + `nn.LayerNorm`, converts
into an llmsrt folder whose audio embeddings and logits equal the reference computation."""

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import CORPUS, SAMPLING_RATE, WITHOUT_LLMSRT, make_clip
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import (
    Blip2QFormerConfig,
    Blip2QFormerModel,
    GenerationConfig,
    Qwen2Config,
    Qwen2ForCausalLM,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
    pipeline,
)

from llmsrt.conversion.convert_llm_srt_checkpoint import convert_llm_srt_checkpoint, main
from llmsrt.processing_llmsrt import LLMSRTProcessor
from llmsrt.tiny import build_tiny_tokenizer

QUERIES, QFORMER_WIDTH, WHISPER_WIDTH, LLM_WIDTH = 8, 48, 32, 64  # 48: Blip2QFormerConfig's 12 heads of 4
LORA_RANK, LORA_ALPHA = 4, 16


class ReferenceProjector(nn.Module):
    """The reference's `encoder_projector`: learnable queries, a Blip-2 Q-Former with `Blip2QFormerConfig` defaults
    but for its sizes, then `linear` + `norm`, or `linear1`, ReLU, `linear2`, `norm` (names as the reference's)."""

    def __init__(self, hidden: int | None):
        super().__init__()
        config = Blip2QFormerConfig(hidden_size=QFORMER_WIDTH, num_hidden_layers=2, intermediate_size=64,
                                    encoder_hidden_size=WHISPER_WIDTH)
        self.query = nn.Parameter(torch.randn(1, QUERIES, QFORMER_WIDTH))
        self.qformer = Blip2QFormerModel(config)
        self.hidden = hidden
        if hidden:
            self.linear1, self.relu, self.linear2 = nn.Linear(QFORMER_WIDTH, hidden), nn.ReLU(), nn.Linear(hidden, LLM_WIDTH)
        else:
            self.linear = nn.Linear(QFORMER_WIDTH, LLM_WIDTH)
        self.norm = nn.LayerNorm(LLM_WIDTH, eps=1e-5)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(frames.shape[0], -1, -1)
        output = self.qformer(query_embeds=query, encoder_hidden_states=frames,
                              encoder_attention_mask=frame_mask).last_hidden_state
        output = self.linear2(self.relu(self.linear1(output))) if self.hidden else self.linear(output)
        return self.norm(output)


def _perturb(module: nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every trainable weight away from its initialisation (LayerNorm gains, zero LoRA B, ...)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def _bf16_round(module: nn.Module) -> None:
    """The reference saves bf16: compute the reference with the values the checkpoint holds."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(parameter.bfloat16().float())


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A Whisper folder and a Qwen2 folder (tiny, random), as `--whisper` / `--llm` take them."""
    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(num_mel_bins=80, d_model=WHISPER_WIDTH, encoder_layers=2, encoder_attention_heads=2,
                               encoder_ffn_dim=64, max_source_positions=250, decoder_layers=1,
                               decoder_attention_heads=2, decoder_ffn_dim=64)).save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=80, chunk_length=5).save_pretrained(root / "whisper")
    tokenizer = build_tiny_tokenizer(CORPUS)
    llm = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=LLM_WIDTH, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        initializer_range=0.3, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return root / "whisper", root / "llm"


def write_reference_checkpoint(path, parts, hidden: int | None, with_lora: bool, with_encoder: bool, seed: int = 0):
    """Save, as the reference does, the trained parameters in bf16; return the reference modules (bf16 values)."""
    whisper, llm = parts
    torch.manual_seed(seed)
    projector = ReferenceProjector(hidden)
    _perturb(projector, seed)
    encoder = WhisperModel.from_pretrained(whisper).encoder.eval()
    language_model = Qwen2ForCausalLM.from_pretrained(llm).eval()
    state = {f"encoder_projector.{name}": p for name, p in projector.named_parameters()}
    if with_encoder:
        _perturb(encoder, seed + 1, scale=0.05)
        state.update({f"encoder.{name}": p for name, p in encoder.named_parameters() if p.requires_grad})
    if with_lora:
        language_model = get_peft_model(language_model, LoraConfig(
            r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])).eval()
        lora = {name: p for name, p in language_model.named_parameters() if "lora_" in name}
        _perturb(nn.ParameterList(lora.values()), seed + 2)
        state.update({f"llm.{name}": p for name, p in lora.items()})
    torch.save({name: p.detach().bfloat16() for name, p in state.items()}, path)
    _bf16_round(projector)
    if with_encoder:
        _bf16_round(encoder)
    if with_lora:
        _bf16_round(nn.ParameterList(p for n, p in language_model.named_parameters() if "lora_" in n))
    return projector.eval(), encoder, language_model


def reference_outputs(reference, batch):
    """The reference's forward: Whisper frames -> adapter over the real frames -> `[audio][prompt]` into the LLM."""
    projector, encoder, language_model = reference
    with torch.no_grad():
        frames = encoder(batch["input_features"]).last_hidden_state
        audio = projector(frames, batch["input_features_mask"][:, ::2])
        prompt = language_model.get_input_embeddings()(batch["input_ids"][:, QUERIES:])
        logits = language_model(inputs_embeds=torch.cat([audio, prompt], dim=1)).logits
    return audio, logits


@pytest.mark.parametrize("hidden", [None, 24], ids=["linear", "linear1-linear2"])
@pytest.mark.parametrize("with_lora", [False, True], ids=["no-lora", "lora"])
@pytest.mark.parametrize("with_encoder", [False, True], ids=["no-encoder", "encoder"])
def test_converted_model_computes_what_the_reference_computes(parts, tmp_path, hidden, with_lora, with_encoder):
    reference = write_reference_checkpoint(tmp_path / "ckpt.pt", parts, hidden, with_lora, with_encoder)
    model = convert_llm_srt_checkpoint(tmp_path / "ckpt.pt", str(parts[0]), str(parts[1]), tmp_path / "out",
                                       lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA).eval()
    assert model.config.adapter_hidden_size == (hidden or 0)
    assert model.config.num_query_tokens == QUERIES and model.config.qformer_config.num_hidden_layers == 2
    processor = LLMSRTProcessor.from_pretrained(tmp_path / "out")
    batch = processor(audio=make_clip(1.5, 1), sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    assert (batch["input_ids"][0, :QUERIES] == processor.audio_token_id).all()  # `[audio][prompt]`, as the reference
    audio, logits = reference_outputs(reference, batch)
    with torch.no_grad():
        converted_audio = model.get_audio_features(batch["input_features"], batch["input_features_mask"])
        converted_logits = model(**batch).logits
    torch.testing.assert_close(converted_audio, audio, rtol=1e-4, atol=1e-5)
    vocab = logits.shape[-1]  # the converted LLM has one more row: the audio placeholder, never generated
    torch.testing.assert_close(converted_logits[..., :vocab], logits, rtol=1e-4, atol=1e-4)


def test_converted_folder_is_complete_and_loads_in_a_fresh_process_through_the_pipeline(parts, tmp_path):
    write_reference_checkpoint(tmp_path / "llm_srt_3b.pt", parts, 24, with_lora=True, with_encoder=True)
    main(["--checkpoint", str(tmp_path / "llm_srt_3b.pt"), "--whisper", str(parts[0]), "--llm", str(parts[1]),
          "--output_dir", str(tmp_path / "out"), "--lora_rank", str(LORA_RANK), "--lora_alpha", str(LORA_ALPHA)])
    out = tmp_path / "out"
    names = {path.name for path in out.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "generation_config.json", "modeling_llmsrt.py",
            "processing_llmsrt.py", "pipeline_llmsrt.py", "processor_config.json"} <= names
    decoding = GenerationConfig.from_pretrained(out)
    assert (decoding.num_beams, decoding.max_new_tokens, decoding.no_repeat_ngram_size) == (5, 400, 5)
    card = (out / "README.md").read_text()
    assert "llm_srt_3b.pt" in card and "license: cc-by-nc-sa-4.0" in card
    config = json.loads((out / "config.json").read_text())
    assert (config["lora_rank"], config["lora_alpha"]) == (LORA_RANK, LORA_ALPHA)

    np.save(tmp_path / "clip.npy", make_clip(1.2, 2))
    script = WITHOUT_LLMSRT + textwrap.dedent(
        """
        import json, numpy as np
        from transformers import pipeline
        folder, clip, out = sys.argv[1:4]
        translator = pipeline("speech-translation", model=folder, trust_remote_code=True)
        result = translator({"array": np.load(clip), "sampling_rate": 16000}, src_lang="eng", tgt_lang="deu",
                            generate_kwargs={"max_new_tokens": 8, "num_beams": 2})
        json.dump(result, open(out, "w"))
        """
    )
    (tmp_path / "fresh.py").write_text(script)
    subprocess.run([sys.executable, str(tmp_path / "fresh.py"), str(out), str(tmp_path / "clip.npy"),
                    str(tmp_path / "result.json")], check=True, capture_output=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "m")},
                   timeout=300)
    fresh = json.loads((tmp_path / "result.json").read_text())
    here = pipeline("speech-translation", model=str(out), trust_remote_code=True)(
        {"array": np.load(tmp_path / "clip.npy"), "sampling_rate": 16000}, src_lang="eng", tgt_lang="deu",
        generate_kwargs={"max_new_tokens": 8, "num_beams": 2})
    assert fresh == here and fresh["src_lang"] == "eng"


def _convert(path, parts, out, **kwargs):
    return convert_llm_srt_checkpoint(path, str(parts[0]), str(parts[1]), out, **kwargs)


def test_unknown_and_missing_keys_are_listed(parts, tmp_path):
    write_reference_checkpoint(tmp_path / "ckpt.pt", parts, None, with_lora=False, with_encoder=False)
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save({**state, "llm.model.norm.weight": torch.ones(LLM_WIDTH), "encoder_projector.gate": torch.ones(1)},
               tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"2 checkpoint key.*encoder_projector\.gate.*llm\.model\.norm\.weight"):
        _convert(tmp_path / "unknown.pt", parts, tmp_path / "a")
    state.pop("encoder_projector.norm.bias")
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing \['projector\.layer_norm\.bias'\]"):
        _convert(tmp_path / "missing.pt", parts, tmp_path / "b")


def test_lora_keys_must_cover_every_layer_with_the_given_rank(parts, tmp_path):
    write_reference_checkpoint(tmp_path / "ckpt.pt", parts, None, with_lora=True, with_encoder=False)
    with pytest.raises(ValueError, match=r"LoRA rank is 4, but --lora_rank is 8"):
        _convert(tmp_path / "ckpt.pt", parts, tmp_path / "a", lora_rank=8, lora_alpha=LORA_ALPHA)
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    state = {k: v for k, v in state.items() if "layers.1.self_attn.v_proj" not in k}
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing \['model\.layers\.1\.self_attn\.v_proj'\]"):
        _convert(tmp_path / "partial.pt", parts, tmp_path / "b", lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA)


def test_shapes_that_disagree_with_the_given_parts_say_which(parts, tmp_path):
    write_reference_checkpoint(tmp_path / "ckpt.pt", parts, None, with_lora=False, with_encoder=False)
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    wide = {**state, "encoder_projector.linear.weight": torch.zeros(96, QFORMER_WIDTH),
            "encoder_projector.linear.bias": torch.zeros(96), "encoder_projector.norm.weight": torch.zeros(96),
            "encoder_projector.norm.bias": torch.zeros(96)}
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"projector\.layers\.0\.weight: checkpoint \(96, 48\).*LLM \(width 64\)"):
        _convert(tmp_path / "wide.pt", parts, tmp_path / "a")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # plain pickle, as an attacker writes it
def test_the_checkpoint_is_read_without_running_pickled_code(parts, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"encoder_projector.query": Payload()}, handle)
    with pytest.raises(ValueError, match="could not be read as plain weights"):
        _convert(tmp_path / "evil.pt", parts, tmp_path / "out")
    assert not marker.exists()
