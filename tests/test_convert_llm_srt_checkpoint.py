"""The converter of the LLM-SRT authors' checkpoints.

The reference computation is assembled here from transformers modules as the authors' code runs them: the raw
waveform padded to 30 s (`whisper.pad_or_trim`) -> log-mel (3000 frames) -> `WhisperEncoder` (1500 frames) ->
`Blip2QFormerModel` with 80 queries attending to all 1500 frames (the collator's all-ones `audio_mel_post_mask`) ->
`linear` / `linear1`-ReLU-`linear2` + `norm` -> `[audio][prompt]` into Qwen2 with peft LoRA (r 16, alpha 32). The
checkpoints are written in the reference's layouts (bf16 values): the single `.pt` file, with the Q-Former text
branch that older transformers saved, and the FSDP save folder (`model.pt` + peft adapter)."""

import json
import logging
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CORPUS, SAMPLING_RATE, WITHOUT_LLMSRT, make_clip, run_in_fresh_process
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn
from transformers import (
    AutoProcessor,
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
from llmsrt.modeling_llmsrt import LLMSRTForConditionalGeneration
from llmsrt.processing_llmsrt import LLMSRTProcessor
from llmsrt.testing import build_tiny_tokenizer

QUERIES, QFORMER_WIDTH, WHISPER_WIDTH, LLM_WIDTH = 80, 48, 32, 64  # 48: Blip2QFormerConfig's 12 heads of 4
LORA_RANK, LORA_ALPHA = 16, 32  # the reference's current PeftConfig
WINDOW_SAMPLES = 30 * SAMPLING_RATE  # `whisper.pad_or_trim`: N_SAMPLES
TEXT_BRANCH_TENSORS = 2 * 6  # 2 Q-Former layers x intermediate.dense.{weight,bias}, output.dense.*, output.LayerNorm.*
PROMPT = "<|eng|><|deu|>"


class ReferenceProjector(nn.Module):
    """The reference's `encoder_projector` (`EncoderProjectorQFormer`, or `EncoderProjectorQFormerPool` with
    `pool`): learnable queries, a Blip-2 Q-Former with `Blip2QFormerConfig` defaults but for its sizes, then `linear`
    + `norm`, or `linear1`, ReLU, `linear2`, `norm` (names as the reference's). `text_branch` builds the Q-Former as
    older transformers did, with the unused `intermediate` / `output` text branch in every layer."""

    def __init__(self, hidden: int | None, queries: int = QUERIES, text_branch: bool = False, pool: int = 1,
                 layers: int = 2, llm_width: int = LLM_WIDTH):
        super().__init__()
        config = Blip2QFormerConfig(hidden_size=QFORMER_WIDTH, num_hidden_layers=layers, intermediate_size=64,
                                    encoder_hidden_size=WHISPER_WIDTH, use_qformer_text_input=text_branch)
        self.query = nn.Parameter(torch.randn(1, queries, QFORMER_WIDTH))
        self.qformer = Blip2QFormerModel(config)
        self.hidden, self.pool = hidden, pool
        if hidden:
            self.linear1, self.relu = nn.Linear(QFORMER_WIDTH, hidden), nn.ReLU()
            self.linear2 = nn.Linear(hidden, llm_width)
        else:
            self.linear = nn.Linear(QFORMER_WIDTH, llm_width)
        self.norm = nn.LayerNorm(llm_width, eps=1e-5)

    def forward(self, frames: torch.Tensor, atts: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(frames.shape[0], -1, -1)
        output = self.qformer(query_embeds=query, encoder_hidden_states=frames, encoder_attention_mask=atts)
        output = output.last_hidden_state
        if self.pool > 1:
            batch, count, width = output.shape
            output = output[:, : count - count % self.pool].view(batch, -1, self.pool, width).mean(2)
        output = self.linear2(self.relu(self.linear1(output))) if self.hidden else self.linear(output)
        return self.norm(output)


def _perturb(module: nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every trainable weight away from its initialisation (LayerNorm gains, zero LoRA B, ...)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def _bf16_round(parameters) -> None:
    """The reference saves bf16: compute the reference with the values the checkpoint holds."""
    with torch.no_grad():
        for parameter in parameters:
            parameter.copy_(parameter.bfloat16().float())


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A Whisper folder (the real 30-s window: 80 mel bins, 3000 mel frames, 1500 positions) and a Qwen2 folder
    (tiny, random), as `--whisper` / `--llm` take them."""
    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(num_mel_bins=80, d_model=WHISPER_WIDTH, encoder_layers=2, encoder_attention_heads=2,
                               encoder_ffn_dim=64, max_source_positions=1500, decoder_layers=1,
                               decoder_attention_heads=2, decoder_ffn_dim=64)).save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(root / "whisper")  # chunk_length 30
    tokenizer = build_tiny_tokenizer(CORPUS)
    llm = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=LLM_WIDTH, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        initializer_range=0.3, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return root / "whisper", root / "llm"


class Reference:
    """The reference's trained modules (bf16 values), built on the given parts, and how it saves them."""

    def __init__(self, parts, hidden=None, with_lora=True, with_encoder=False, text_branch=False, queries=QUERIES,
                 pool=1, seed=0):
        whisper, llm = parts
        torch.manual_seed(seed)
        self.projector = ReferenceProjector(hidden, queries, text_branch, pool)
        _perturb(self.projector, seed)
        self.projector.eval()
        self.encoder = WhisperModel.from_pretrained(whisper).encoder.eval()
        self.language_model = Qwen2ForCausalLM.from_pretrained(llm).eval()
        self.feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
        self.tokenizer = build_tiny_tokenizer(CORPUS)
        self.with_encoder = with_encoder
        if with_encoder:
            _perturb(self.encoder, seed + 1, scale=0.05)
        if with_lora:
            self.language_model = get_peft_model(self.language_model, LoraConfig(
                r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])).eval()
            _perturb(nn.ParameterList(self.lora_parameters().values()), seed + 2)
        self.with_lora = with_lora
        _bf16_round(self.projector.parameters())
        if with_encoder:  # otherwise the converted model keeps the given Whisper's own weights, as the reference
            _bf16_round(self.encoder.parameters())
        _bf16_round(self.lora_parameters().values())

    def lora_parameters(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.language_model.named_parameters() if "lora_" in name}

    def trained_state(self) -> dict[str, torch.Tensor]:
        """`slam_model`'s trainable parameters under its names: `encoder_projector.*`, `encoder.*`, `llm.*`."""
        state = {f"encoder_projector.{name}": p for name, p in self.projector.named_parameters()}
        if self.with_encoder:
            state.update({f"encoder.{name}": p for name, p in self.encoder.named_parameters()})
        state.update({f"llm.{name}": p for name, p in self.lora_parameters().items()})
        return {name: p.detach().bfloat16() for name, p in state.items()}

    def save_single_file(self, path):
        """`save_model_checkpoint_peft`: one `torch.save` of the trained parameters."""
        torch.save(self.trained_state(), path)
        return path

    def save_fsdp(self, folder, adapter: str = "older-peft"):
        """`save_model_checkpoint_peft_full_shard`: `model.pt` holds `encoder_projector.*` (and `encoder.*`), and
        `model.llm.save_pretrained(save_dir, state_dict=llm_dict)` writes the LoRA as a peft adapter. The peft of
        the reference's time kept the `lora_` keys of the `llm.`-prefixed dict it was given and removed the
        adapter name (`older-peft`: `llm.base_model.model....lora_A.weight`, safetensors); the current peft's own
        save is `peft` (`base_model.model....lora_A.weight`, `adapter_model.bin`)."""
        folder.mkdir(parents=True, exist_ok=True)
        state = self.trained_state()
        torch.save({k: v for k, v in state.items() if not k.startswith("llm.")}, folder / "model.pt")
        if adapter == "older-peft":
            self.language_model.peft_config["default"].save_pretrained(folder)
            lora = {k.replace(".default", ""): v.contiguous() for k, v in state.items() if k.startswith("llm.")}
            save_file(lora, folder / "adapter_model.safetensors")
        else:
            self.language_model.save_pretrained(folder, safe_serialization=False)
        return folder

    def outputs(self, waveform: np.ndarray, prompt: str = PROMPT):
        """The reference's forward for one clip: waveform padded to 30 s -> log-mel -> encoder -> the projector
        attending to all 1500 frames -> `[audio][prompt]` into the LLM. Returns audio embeddings and logits."""
        padded = np.pad(waveform, (0, WINDOW_SAMPLES - waveform.size))  # whisper.pad_or_trim
        mel = self.feature_extractor(padded, sampling_rate=SAMPLING_RATE, return_tensors="pt")["input_features"]
        assert mel.shape[-1] == 3000
        prompt_ids = torch.tensor([self.tokenizer.encode(prompt)])
        with torch.no_grad():
            frames = self.encoder(mel).last_hidden_state
            atts = torch.ones(1, (mel.shape[-1] + 1) // 2)  # the collator's audio_mel_post_mask
            audio = self.projector(frames, atts)
            prompt_embeds = self.language_model.get_input_embeddings()(prompt_ids)
            logits = self.language_model(inputs_embeds=torch.cat([audio, prompt_embeds], dim=1)).logits
        return audio, logits, prompt_ids


# Run in a fresh process without llmsrt: load the converted folder with trust_remote_code and save its logits.
FRESH_LOGITS = WITHOUT_LLMSRT + textwrap.dedent(
    """
    import numpy as np, torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor
    folder, clip, out = sys.argv[1:4]
    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    batch = processor(audio=np.load(clip), sampling_rate=16000, src_lang="eng", tgt_lang="deu")
    with torch.no_grad():
        logits = model(**batch).logits
    np.save(out, logits.numpy())
    np.save(out.replace(".npy", "-ids.npy"), batch["input_ids"].numpy())
    """
)


def fresh_process_logits(folder, waveform, tmp_path):
    run_in_fresh_process(FRESH_LOGITS, waveform, folder, "logits.npy", tmp_path)
    return torch.from_numpy(np.load(tmp_path / "logits.npy")), torch.from_numpy(np.load(tmp_path / "logits-ids.npy"))


def assert_reference_logits(logits, input_ids, reference, waveform, tolerance=1e-4):
    """`[80 placeholders][the reference's prompt ids]`, and the reference's logits (the converted LLM has one more
    vocabulary row, the audio placeholder, never generated)."""
    _, expected, prompt_ids = reference.outputs(waveform)
    assert input_ids.shape[1] == QUERIES + prompt_ids.shape[1]
    assert input_ids[0, QUERIES:].tolist() == prompt_ids[0].tolist()
    difference = (logits[..., : expected.shape[-1]] - expected).abs().max().item()
    print(f"max |logits - reference| = {difference:.3g} (logits up to {expected.abs().max().item():.3g})")
    assert difference < tolerance, f"max |logits - reference| = {difference}"
    return difference


def run_main(capsys, checkpoint, parts, out, *flags):
    main(["--checkpoint", str(checkpoint), "--whisper", str(parts[0]), "--llm", str(parts[1]),
          "--output_dir", str(out), *flags])
    return capsys.readouterr().out


def test_a_rank_16_reference_file_with_the_text_branch_converts_to_the_same_logits_in_a_fresh_process(
    parts, tmp_path, capsys, caplog
):
    reference = Reference(parts, hidden=24, with_lora=True, text_branch=True)
    checkpoint = reference.save_single_file(tmp_path / "llm_srt_3b.pt")
    text_branch = [k for k in torch.load(checkpoint) if re.search(r"\.layer\.\d+\.(intermediate|output)\.", k)]
    assert len(text_branch) == TEXT_BRANCH_TENSORS
    with caplog.at_level(logging.WARNING):
        printed = run_main(capsys, checkpoint, parts, tmp_path / "out")  # no LoRA flags: rank from the tensors
    assert f"Dropped {TEXT_BRANCH_TENSORS} Q-Former text-branch tensors" in caplog.text
    print(printed)  # shown with `pytest -s`: the summary quoted in docs/conversion.md
    assert f"queries: {QUERIES} x {QFORMER_WIDTH}" in printed
    assert "LoRA: 4 modules (self_attn.q_proj, self_attn.v_proj on 2 layers), rank 16 (from the tensors), alpha 32 (" \
           "the reference's default; the file does not record it), scaling 2: merged into the LLM" in printed
    assert f"dropped: {TEXT_BRANCH_TENSORS} Q-Former text-branch tensors" in printed
    assert "projector: Linear(48, 24) ReLU Linear(24, 64) + LayerNorm(64)" in printed
    out = tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["qformer_attends_padding"] is True and config["variable_length_encoding"] is False
    assert (config["lora_rank"], config["lora_alpha"]) == (LORA_RANK, LORA_ALPHA)
    card = (out / "README.md").read_text()
    assert "llm_srt_3b.pt" in card and "license: cc-by-nc-sa-4.0" in card
    assert "rank 16 (from the tensors)" in card and "Nothing was measured on real data" in card

    waveform = make_clip(1.5, 1)
    logits, input_ids = fresh_process_logits(out, waveform, tmp_path)
    assert_reference_logits(logits, input_ids, reference, waveform)


@pytest.mark.parametrize("adapter", ["older-peft", "peft"])
def test_an_fsdp_save_folder_converts_to_the_same_logits_in_a_fresh_process(parts, tmp_path, capsys, adapter):
    reference = Reference(parts, hidden=None, with_lora=True, seed=3)
    folder = reference.save_fsdp(tmp_path / "asr_epoch_1_step_100", adapter)
    printed = run_main(capsys, folder, parts, tmp_path / "out")
    assert "alpha 32 (adapter_config.json)" in printed and "rank 16 (from the tensors)" in printed
    assert "adapter_config.json" in printed.splitlines()[1]  # the files read
    waveform = make_clip(2.0, 4)
    logits, input_ids = fresh_process_logits(tmp_path / "out", waveform, tmp_path)
    assert_reference_logits(logits, input_ids, reference, waveform)


def test_an_fsdp_adapter_whose_alpha_disagrees_with_lora_alpha_or_holds_no_lora_is_refused(parts, tmp_path):
    folder = Reference(parts, with_lora=True).save_fsdp(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=r"--lora_alpha 16, but the adapter's adapter_config.json says 32"):
        _convert(folder, parts, tmp_path / "a", lora_alpha=16)
    save_file({}, folder / "adapter_model.safetensors")  # what today's peft writes for the reference's llm. keys
    with pytest.raises(ValueError, match=r"holds no LoRA tensors.*--no_lora"):
        _convert(folder, parts, tmp_path / "b")
    _convert(folder, parts, tmp_path / "c", no_lora=True)


@pytest.mark.parametrize("hidden", [None, 24], ids=["linear", "linear1-linear2"])
@pytest.mark.parametrize("with_lora", [False, True], ids=["no-lora", "lora"])
@pytest.mark.parametrize("with_encoder", [False, True], ids=["no-encoder", "encoder"])
def test_converted_model_computes_what_the_reference_computes(parts, tmp_path, hidden, with_lora, with_encoder):
    reference = Reference(parts, hidden, with_lora, with_encoder)
    checkpoint = reference.save_single_file(tmp_path / "ckpt.pt")
    model = _convert(checkpoint, parts, tmp_path / "out").model.eval()
    assert model.config.adapter_hidden_size == (hidden or 0)
    assert model.config.num_query_tokens == QUERIES and model.config.qformer_config.num_hidden_layers == 2
    processor = LLMSRTProcessor.from_pretrained(tmp_path / "out")
    waveform = make_clip(1.5, 1)
    batch = processor(audio=waveform, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    audio, _, _ = reference.outputs(waveform)
    with torch.no_grad():
        converted_audio = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).pooler_output
        logits = model(**batch).logits
    torch.testing.assert_close(converted_audio, audio, rtol=1e-4, atol=1e-5)
    assert_reference_logits(logits, batch["input_ids"], reference, waveform)


def test_the_masked_reading_is_not_the_reference(parts, tmp_path):
    """The test above can tell: the same folder reading the clip's real frames only (the default of llmsrt
    models, `qformer_attends_padding=False`) is far from the reference's logits."""
    reference = Reference(parts, hidden=24)
    model = _convert(reference.save_single_file(tmp_path / "ckpt.pt"), parts, tmp_path / "out").model.eval()
    processor = LLMSRTProcessor.from_pretrained(tmp_path / "out")
    waveform = make_clip(1.5, 1)
    batch = processor(audio=waveform, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    model.config.qformer_attends_padding = False
    with torch.no_grad():
        masked = model(**batch).logits
    _, expected, _ = reference.outputs(waveform)
    assert (masked[..., : expected.shape[-1]] - expected).abs().max() > 1e-2


def test_the_paper_recipe_builds_a_model_that_reads_the_window_as_a_converted_folder(parts, tmp_path):
    from llmsrt.training.model_setup import build_initial_model
    from llmsrt.training.recipes import parse_train_args
    paper = str(Path(__file__).resolve().parents[1] / "recipes" / "paper-qwen2.5-3b-fleurs15.yaml")
    model_args, *_ = parse_train_args([paper, "--whisper", str(parts[0]), "--llm", str(parts[1]), "--bf16", "false",
                                       "--model_dtype", "float32", "--qformer_num_layers", "2"])
    trained, processor = build_initial_model(model_args)
    converted = _convert(Reference(parts).save_single_file(tmp_path / "ckpt.pt"), parts, tmp_path / "out").model
    assert trained.config.qformer_attends_padding is True is converted.config.qformer_attends_padding
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE)
    with torch.no_grad():
        frames, _ = trained.encode_frames(batch["input_features"], batch["input_features_mask"])
        converted_frames, _ = converted.encode_frames(batch["input_features"], batch["input_features_mask"])
    assert frames.shape[1] == converted_frames.shape[1] == 1500  # the whole window, in training and inference
    assert trained.qformer_frame_mask(torch.ones(1, 1500)) is None is converted.qformer_frame_mask(torch.ones(1, 1))


def test_the_query_count_tells_the_projector_and_an_unknown_count_is_refused_unless_named(parts, tmp_path):
    qqm = Reference(parts, hidden=40, with_lora=False, queries=150, pool=5).save_single_file(tmp_path / "mcat.pt")
    pooled = _convert(qqm, parts, tmp_path / "a").model.config
    assert (pooled.num_query_tokens, pooled.query_pooling_stride, pooled.num_audio_embeddings) == (150, 5, 30)
    plain = _convert(qqm, parts, tmp_path / "a2", projector="q-former").model.config
    assert (plain.num_query_tokens, plain.query_pooling_stride, plain.num_audio_embeddings) == (150, 1, 150)
    odd = Reference(parts, with_lora=False, queries=12).save_single_file(tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"holds 12 queries.*layout is unknown.*--projector q-former.*--projector "
                                         r"qqm"):
        _convert(odd, parts, tmp_path / "b")
    model = _convert(odd, parts, tmp_path / "c", projector="q-former").model
    assert model.config.num_query_tokens == 12
    assert _convert(odd, parts, tmp_path / "c2", projector="qqm").model.config.num_audio_embeddings == 2  # 12 // 5
    state = torch.load(odd, weights_only=True)
    linear_only = {k: v for k, v in state.items() if not k.startswith(("encoder_projector.query",
                                                                       "encoder_projector.qformer"))}
    torch.save(linear_only, tmp_path / "linear.pt")
    with pytest.raises(ValueError, match=r"no encoder_projector\.query: it is not a Q-Former adapter"):
        _convert(tmp_path / "linear.pt", parts, tmp_path / "d", projector="q-former")


def test_no_lora_and_language_tags_reach_the_saved_folder(parts, tmp_path, capsys):
    checkpoint = Reference(parts, hidden=24, with_lora=True).save_single_file(tmp_path / "llm_srt_3b.pt")
    printed = run_main(capsys, checkpoint, parts, tmp_path / "out", "--no_lora", "--language_tag", "zho=cmn",
                       "--language_tag", "yue=yue")
    assert "rank 16 (from the tensors): not applied (--no_lora)" in printed
    assert "language tags: yue -> <|yue|>, zho -> <|cmn|>" in printed
    out = tmp_path / "out"
    base = Qwen2ForCausalLM.from_pretrained(parts[1]).state_dict()
    model = LLMSRTForConditionalGeneration.from_pretrained(out)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.v_proj.weight"):
        torch.testing.assert_close(model.language_model.state_dict()[name], base[name], rtol=0, atol=0)
    assert "no LoRA applied, the base LLM's weights" in (out / "README.md").read_text()
    assert json.loads((out / "processor_config.json").read_text())["language_tags"] == {"zho": "cmn", "yue": "yue"}
    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="zho")
    assert processor.tokenizer.decode(batch["input_ids"][0, QUERIES:]) == "<|eng|><|cmn|>"
    answer = processor.tokenizer("the train<|eng|><|cmn|>火车", add_special_tokens=False, return_tensors="pt")
    parsed = processor.post_process_speech_translation(answer["input_ids"], "srt", "eng", "zho")
    assert parsed == [{"transcription": "the train", "translation": "火车"}]
    default = LLMSRTProcessor.from_pretrained_parts(str(parts[0]), str(parts[1]))
    batch = default(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="zho")
    assert default.tokenizer.decode(batch["input_ids"][0, QUERIES:]) == "<|eng|><|zho|>"  # default unchanged


def test_a_bad_language_tag_says_what_is_accepted(parts, tmp_path, capsys):
    checkpoint = Reference(parts, with_lora=False).save_single_file(tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match=r"a tag code is three lowercase letters"):
        _convert(checkpoint, parts, tmp_path / "a", language_tags={"zho": "Mandarin"})
    with pytest.raises(ValueError, match=r"Unknown language code 'xx'"):
        _convert(checkpoint, parts, tmp_path / "b", language_tags={"xx": "cmn"})
    with pytest.raises(SystemExit):
        run_main(capsys, checkpoint, parts, tmp_path / "c", "--language_tag", "zho")
    assert "expected LANGUAGE=TAG" in capsys.readouterr().err


def test_converted_folder_is_complete_and_runs_through_the_pipeline_in_a_fresh_process(parts, tmp_path):
    checkpoint = Reference(parts, hidden=24, with_lora=True, with_encoder=True).save_single_file(tmp_path / "c.pt")
    _convert(checkpoint, parts, tmp_path / "out")
    out = tmp_path / "out"
    names = {path.name for path in out.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "generation_config.json", "modeling_llmsrt.py",
            "processing_llmsrt.py", "pipeline_llmsrt.py", "processor_config.json"} <= names
    decoding = GenerationConfig.from_pretrained(out)
    assert (decoding.num_beams, decoding.max_new_tokens, decoding.no_repeat_ngram_size) == (5, 400, 5)

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
    state = torch.load(Reference(parts, with_lora=False).save_single_file(tmp_path / "ckpt.pt"), weights_only=True)
    torch.save({**state, "llm.model.norm.weight": torch.ones(LLM_WIDTH), "encoder_projector.gate": torch.ones(1)},
               tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"2 checkpoint key.*encoder_projector\.gate.*llm\.model\.norm\.weight"):
        _convert(tmp_path / "unknown.pt", parts, tmp_path / "a")
    state.pop("encoder_projector.norm.bias")
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing \['projector\.layer_norm\.bias'\]"):
        _convert(tmp_path / "missing.pt", parts, tmp_path / "b")


def test_lora_keys_must_cover_every_layer_and_agree_on_their_rank(parts, tmp_path):
    state = torch.load(Reference(parts, with_lora=True).save_single_file(tmp_path / "ckpt.pt"), weights_only=True)
    partial = {k: v for k, v in state.items() if "layers.1.self_attn.v_proj" not in k}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing \['model\.layers\.1\.self_attn\.v_proj'\]"):
        _convert(tmp_path / "partial.pt", parts, tmp_path / "a")
    key = "llm.base_model.model.model.layers.0.self_attn.q_proj.lora_"
    mixed = {**state, key + "A.default.weight": state[key + "A.default.weight"][:8],
             key + "B.default.weight": state[key + "B.default.weight"][:, :8]}
    torch.save(mixed, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match=r"disagree on their rank: \[8, 16\]"):
        _convert(tmp_path / "mixed.pt", parts, tmp_path / "b")


def test_shapes_that_disagree_with_the_given_parts_say_which(parts, tmp_path):
    state = torch.load(Reference(parts, with_lora=False).save_single_file(tmp_path / "ckpt.pt"), weights_only=True)
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
