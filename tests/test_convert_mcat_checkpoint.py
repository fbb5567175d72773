"""MCAT (LLM-SRT v2.0) checkpoints through the converter: the same command as v1.0 reads them from their tensors.

The reference computation is assembled here from transformers modules as `yxduir/m2m-70` computes
(`slam_model_st.py`, `EncoderProjectorQFormerPool`, `st_dataset.py`): the waveform padded to 30 s -> log-mel of 128
bins (3000 frames) -> `WhisperEncoder` (1500 frames) -> an 8-layer `Blip2QFormerModel` with 150 queries attending to
all 1500 frames (all-ones mask) -> mean over consecutive groups of 5 (30 vectors) -> `linear1` (2560) ReLU `linear2`
`norm` -> written over 30 placeholders in `[30 audio] + tokenizer.encode("<|eng|><|deu|>")` (the tokenizer adds
`<bos>`: BOS after the audio) -> the LLM with peft LoRA (r 16, alpha 32 on every `q_proj`/`v_proj`, the vision
tower's included). On Gemma-3 (a `Gemma3ForConditionalGeneration`, vision tower and all) the text embeddings come from
its scaled `embed_tokens` and the audio is merged after, unscaled; on Gemma-2 the embeddings are looked up unscaled
and the merged `inputs_embeds` multiplied by `sqrt(hidden_size)` in the LLM's dtype, as transformers 4.x
`Gemma2Model.forward` did. The files are written in the reference's layout with bf16 values (its `torch.save` of the
trained parameters), the Gemma-3 LoRA keys in each of the two module layouts of transformers' Gemma-3. The parts are
tiny (widths of 16-48) but shaped as the reference's where the computation depends on it: 128 mel bins, the 30-s
window, 8 Q-Former layers, 150 queries, MLP width 2560.

The mel features are computed by transformers' `WhisperFeatureExtractor` for both sides (the reference uses
openai-whisper's `log_mel_spectrogram`, a different implementation: not compared here); the reference runs in bf16,
a precision choice, and both sides here run in float32.
"""

import numpy as np
import pytest
import torch
from helpers import CORPUS, SAMPLING_RATE, make_clip
from peft import LoraConfig, get_peft_model
from test_convert_llm_srt_checkpoint import (
    LORA_ALPHA,
    LORA_RANK,
    WHISPER_WIDTH,
    WINDOW_SAMPLES,
    ReferenceProjector,
    _bf16_round,
    _perturb,
    fresh_process_logits,
    run_main,
)
from test_mcat_model import tiny_gemma3_folder
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

from llmsrt.conversion.convert_llm_srt_checkpoint import convert_llm_srt_checkpoint
from llmsrt.testing import build_tiny_tokenizer

QUERIES, STRIDE, EMBEDDINGS, MLP_WIDTH, QFORMER_LAYERS, MEL_BINS = 150, 5, 30, 2560, 8, 128
GEMMA_WIDTH = 32
PROMPT = "<|eng|><|deu|>"
# The two module layouts of transformers' Gemma3ForConditionalGeneration, as the reference's LoRA keys spell them:
# current transformers (what peft names here) and older ones (`language_model.model.`, `vision_tower.vision_model.`).
OLDER_GEMMA3_KEYS = {
    "llm.base_model.model.model.language_model.": "llm.base_model.model.language_model.model.",
    "llm.base_model.model.model.vision_tower.": "llm.base_model.model.vision_tower.vision_model.",
}


@pytest.fixture(scope="module")
def mcat_parts(tmp_path_factory):
    """A Whisper of 128 mel bins and the 30-s window (1500 positions), a tiny Gemma-3 multimodal folder and a tiny
    Gemma-2 folder, both with a tokenizer that adds `<bos>` as Gemma's does."""
    root = tmp_path_factory.mktemp("mcat-parts")
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(num_mel_bins=MEL_BINS, d_model=WHISPER_WIDTH, encoder_layers=2,
                               encoder_attention_heads=2, encoder_ffn_dim=64, max_source_positions=1500,
                               decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64)
                 ).save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=MEL_BINS).save_pretrained(root / "whisper")
    tokenizer = build_tiny_tokenizer(CORPUS, bos_token="<bos>")
    tiny_gemma3_folder(root / "gemma3", vocab_size=len(tokenizer))
    tokenizer.save_pretrained(root / "gemma3")
    torch.manual_seed(1)
    Gemma2ForCausalLM(Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=GEMMA_WIDTH, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=8, max_position_embeddings=256,
        initializer_range=0.3, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)).save_pretrained(root / "gemma2")
    tokenizer.save_pretrained(root / "gemma2")
    return {"whisper": root / "whisper", "gemma3": root / "gemma3", "gemma2": root / "gemma2"}


class MCATReference:
    """The reference's MCAT model on tiny parts (trained modules perturbed, bf16 values), its file and its logits."""

    def __init__(self, whisper, llm, seed=0):
        torch.manual_seed(seed)
        self.projector = ReferenceProjector(MLP_WIDTH, QUERIES, pool=STRIDE, layers=QFORMER_LAYERS,
                                            llm_width=GEMMA_WIDTH)
        _perturb(self.projector, seed)
        self.projector.eval()
        self.encoder = WhisperModel.from_pretrained(whisper).encoder.eval()
        self.feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
        self.tokenizer = AutoTokenizer.from_pretrained(llm)
        base = AutoModelForCausalLM.from_pretrained(llm).eval()
        self.gemma2 = base.config.model_type == "gemma2"
        self.language_model = get_peft_model(base, LoraConfig(
            r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])).eval()
        _perturb(torch.nn.ParameterList(self.lora_parameters().values()), seed + 2)
        _bf16_round(self.projector.parameters())
        _bf16_round(self.lora_parameters().values())

    def lora_parameters(self) -> dict:
        return {name: p for name, p in self.language_model.named_parameters() if "lora_" in name}

    def save(self, path, layout: str = "current"):
        """`torch.save` of the trained parameters in bf16 under the reference's names; `layout="older"` writes the
        Gemma-3 keys as older transformers named its modules."""
        state = {f"encoder_projector.{name}": p for name, p in self.projector.named_parameters()}
        state.update({f"llm.{name}": p for name, p in self.lora_parameters().items()})
        state = {name: p.detach().bfloat16() for name, p in state.items()}
        if layout == "older":
            renamed = {}
            for name, tensor in state.items():
                for new, old in OLDER_GEMMA3_KEYS.items():
                    name = name.replace(new, old)
                renamed[name] = tensor
            state = renamed
        torch.save(state, path)
        return path

    def logits(self, waveform: np.ndarray, prompt: str = PROMPT):
        """`slam_model_st.forward` for one clip: `[30 audio] + tokenizer.encode(prompt)` (`-1` placeholders read as
        id 0), the text embedded, the audio written over its positions (`modality_mask`), the LLM's logits."""
        padded = np.pad(waveform, (0, WINDOW_SAMPLES - waveform.size))  # whisper.pad_or_trim
        mel = self.feature_extractor(padded, sampling_rate=SAMPLING_RATE, return_tensors="pt")["input_features"]
        assert mel.shape[1:] == (MEL_BINS, 3000)
        input_ids = torch.tensor([[-1] * EMBEDDINGS + self.tokenizer.encode(prompt)])
        modality_mask = input_ids == -1
        input_ids[modality_mask] = 0
        with torch.no_grad():
            frames = self.encoder(mel).last_hidden_state
            assert frames.shape[1] == 1500
            audio = self.projector(frames, torch.ones(1, 1500))  # (1, 30, d)
            inner = self.language_model.base_model.model
            if self.gemma2:
                # transformers 4.x: an unscaled nn.Embedding, and the forward scales every inputs_embeds.
                embeds = nn_embedding(input_ids, inner.model.embed_tokens.weight)
            else:
                embeds = inner.model.language_model.embed_tokens(input_ids)  # llm.model.language_model.embed_tokens
            audio_pad = torch.zeros_like(embeds)
            audio_pad[:, :EMBEDDINGS] = audio
            inputs_embeds = audio_pad + embeds * (~modality_mask[:, :, None])
            if self.gemma2:
                inputs_embeds = inputs_embeds * torch.tensor(GEMMA_WIDTH**0.5, dtype=inputs_embeds.dtype)
            logits = self.language_model(inputs_embeds=inputs_embeds,
                                         attention_mask=torch.ones(input_ids.shape, dtype=torch.long)).logits
        return logits, input_ids


def nn_embedding(input_ids, weight):
    return torch.nn.functional.embedding(input_ids, weight)


def check_fresh_process_logits(folder, reference, tmp_path, waveform):
    """The converted folder in a fresh process (trust_remote_code, no llmsrt): ids `[30 audio][<bos>][tags]` and the
    reference's float32 logits (the converted LLM has one more vocabulary row, the audio placeholder)."""
    logits, input_ids = fresh_process_logits(folder, waveform, tmp_path)
    expected, reference_ids = reference.logits(waveform)
    tokenizer = reference.tokenizer
    assert input_ids[0, EMBEDDINGS:].tolist() == tokenizer.encode(PROMPT)
    assert input_ids[0, EMBEDDINGS] == tokenizer.bos_token_id
    assert len(set(input_ids[0, :EMBEDDINGS].tolist())) == 1 and input_ids.shape == reference_ids.shape
    difference = (logits[..., : expected.shape[-1]] - expected).abs().max().item()
    print(f"max |logits - reference| = {difference:.3g} (logits up to {expected.abs().max().item():.3g})")
    assert difference < 1e-4, difference
    return difference


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["current", "older"])
def test_an_mcat_large_shaped_file_converts_to_the_reference_logits_in_a_fresh_process(
    mcat_parts, tmp_path, capsys, layout
):
    reference = MCATReference(mcat_parts["whisper"], mcat_parts["gemma3"])
    checkpoint = reference.save(tmp_path / "mcat_large_27b.pt", layout)
    stored = torch.load(checkpoint, weights_only=True)
    vision = [key for key in stored if "vision_tower" in key]
    assert vision and all(tensor.dtype == torch.bfloat16 for tensor in stored.values())
    printed = run_main(capsys, checkpoint, (mcat_parts["whisper"], mcat_parts["gemma3"]), tmp_path / "out")
    print(printed)  # shown with `pytest -s`: the summary quoted in the report and docs/conversion.md
    assert f"queries: {QUERIES} x 48, mean-pooled by {STRIDE} -> {EMBEDDINGS} embeddings per clip" in printed
    assert f"Q-Former: {QFORMER_LAYERS} layers" in printed
    assert f"projector: Linear(48, {MLP_WIDTH}) ReLU Linear({MLP_WIDTH}, {GEMMA_WIDTH}) + LayerNorm" in printed
    assert "rank 16 (from the tensors)" in printed and "merged into the LLM" in printed
    expected_layout = {"current": "model.language_model.layers.N (current", "older": "language_model.model.layers.N"}
    assert f"LoRA keys: Gemma-3 {expected_layout[layout]}" in printed
    assert f"{len(vision) // 2} vision-tower LoRA modules ({len(vision)} tensors" in printed
    assert "LLM: Gemma3ForCausalLM (gemma3_text" in printed and "Gemma3ForConditionalGeneration" in printed
    assert f"prompt: [{EMBEDDINGS} audio][<bos>][tags]" in printed
    assert "audio embeddings: unscaled" in printed
    assert "languages: 70 (MCAT's" in printed and "zho -> <|cmn|>" in printed and "aze -> <|azj|>" in printed
    check_fresh_process_logits(tmp_path / "out", reference, tmp_path, make_clip(1.5, 1))


@pytest.mark.slow
def test_a_gemma2_based_file_converts_to_the_reference_logits_with_its_audio_scaled(mcat_parts, tmp_path, capsys):
    reference = MCATReference(mcat_parts["whisper"], mcat_parts["gemma2"], seed=5)
    checkpoint = reference.save(tmp_path / "mcat_small_9b.pt")
    printed = run_main(capsys, checkpoint, (mcat_parts["whisper"], mcat_parts["gemma2"]), tmp_path / "out")
    print(printed)
    assert "LoRA keys: a causal LM's model.layers.N" in printed and "dropped: none" in printed
    assert f"audio embeddings: x {GEMMA_WIDTH**0.5:g} = sqrt({GEMMA_WIDTH})" in printed
    waveform = make_clip(2.0, 3)
    check_fresh_process_logits(tmp_path / "out", reference, tmp_path, waveform)


def test_the_parity_tests_can_tell_a_wrong_scale_or_bos_place(mcat_parts, tmp_path):
    """In-process, on a converted Gemma-2 file: the folder's reading matches the reference, and unscaled audio or
    the BOS before the audio (the v1.0 layout with Gemma's default BOS) is far from it."""
    from llmsrt.processing_llmsrt import LLMSRTProcessor

    reference = MCATReference(mcat_parts["whisper"], mcat_parts["gemma2"], seed=5)
    model = convert_llm_srt_checkpoint(reference.save(tmp_path / "c.pt"), str(mcat_parts["whisper"]),
                                       str(mcat_parts["gemma2"]), tmp_path / "out").model.eval()
    processor = LLMSRTProcessor.from_pretrained(tmp_path / "out")
    waveform = make_clip(1.0, 2)
    batch = processor(audio=waveform, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    expected, _ = reference.logits(waveform)
    vocabulary = expected.shape[-1]
    with torch.no_grad():
        right = model(**batch).logits[..., :vocabulary]
        model.config.audio_embedding_scale = None
        unscaled = model(**batch).logits[..., :vocabulary]
    assert (right - expected).abs().max() < 1e-4
    assert (unscaled - expected).abs().max() > 1e-2
    ids = batch["input_ids"][0].tolist()
    bos_first = torch.tensor([[ids[EMBEDDINGS]] + ids[:EMBEDDINGS] + ids[EMBEDDINGS + 1 :]])
    model.config.audio_embedding_scale = GEMMA_WIDTH**0.5
    with torch.no_grad():
        moved = model(input_ids=bos_first, input_features=batch["input_features"]).logits[..., :vocabulary]
    assert (moved[:, -1] - expected[:, -1]).abs().max() > 1e-2
