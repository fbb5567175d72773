"""Parity with the MCAT authors' own code: their `EncoderProjectorQFormerPool` and `slam_model` (yxduir/m2m-70) run
on tiny parts as the reference, against the llmsrt folder the converter makes of the file their parameters save to.

    python benchmarks/mcat_reference_parity.py --authors_repo PATH   # a checkout of github.com/yxduir/m2m-70

Their code is imported from PATH, never copied here (it stays theirs). What it runs:

- the reference: their `slam_model` (`SLAM-LLM/examples/st_covost2/model/slam_model_st.py`) holding a tiny Whisper
  encoder (128 mel bins, the 30-s window: 1500 frames), their `EncoderProjectorQFormerPool` (`qqm`: their
  `Blip2QFormerConfig()` Q-Former of width 768 with 8 layers, 150 queries mean-pooled by 5, Linear(768, 2560) ReLU
  Linear(2560, d) LayerNorm) and a tiny `Gemma3ForConditionalGeneration` (vision tower included) with peft LoRA
  (r 16, alpha 32 on every q_proj / v_proj, as `asr_config.py`); trained weights perturbed, then rounded to bf16.
  Their forward is called as their inference collator feeds it (`[30 x -1] + tokenizer.encode("<|eng|><|deu|>")`,
  `modality_mask` over the placeholders, `audio_mel` of the clip padded to 30 s), in float32;
- the file: their model's trainable parameters (`encoder_projector.*`, the LLM's LoRA, the vision tower's included)
  under their names, bf16, as their checkpoint handler saves `requires_grad` parameters;
- llmsrt: `python -m llmsrt.conversion.convert_llm_srt_checkpoint` on that file, the folder loaded with
  `trust_remote_code`, its processor's ids and features, float32 logits.

Two things of their environment are supplied, and printed: modules their package imports at load time but this
computation never calls (`wandb`, `omegaconf`, `pkg_resources` where not installed) are stubbed; where transformers
no longer has `Gemma3ForConditionalGeneration.language_model` (the property of transformers 4.52-4.57 that their
`self.llm.model.language_model.embed_tokens` reads), it is given back, returning the same module
(`model.language_model`). Both sides read the log-mel features of transformers' `WhisperFeatureExtractor` (theirs
computes them with openai-whisper, a different implementation, not compared here).
"""

import argparse
import importlib.machinery
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch

QUERIES, STRIDE, EMBEDDINGS, QFORMER_LAYERS, MEL_BINS, WHISPER_WIDTH = 150, 5, 30, 8, 128, 32
PROMPT = "<|eng|><|deu|>"
CORPUS = ["the train leaves at nine", "der zug fährt um neun ab", "good morning my friend", "guten morgen"]


class Fields(dict):
    """The attribute-and-`get` access their code makes of its hydra configs."""

    __getattr__ = dict.__getitem__


def import_their_code(repo: Path):
    """Their projector module and `slam_model_st`, with the load-time-only modules stubbed where missing."""
    stubbed = []
    for name in ("wandb", "omegaconf", "pkg_resources"):
        if importlib.util.find_spec(name) is None:
            stub = mock.MagicMock(name=name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = stub
            stubbed.append(name)
    if "pkg_resources" in stubbed:
        import packaging

        sys.modules["pkg_resources"].packaging = packaging
    sys.path[:0] = [str(repo / "SLAM-LLM" / "src"), str(repo / "SLAM-LLM" / "examples" / "st_covost2")]
    from model.slam_model_st import slam_model
    from slam_llm.models.projector import EncoderProjectorQFormerPool

    return EncoderProjectorQFormerPool, slam_model, stubbed


def perturb(parameters, seed: int, scale: float = 0.3) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in parameters:
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
            parameter.copy_(parameter.bfloat16().float())  # the values their bf16 file holds


def build_parts(folder: Path):
    """A tiny Whisper (128 mel bins, 1500 positions) and a tiny Gemma-3 multimodal folder with a BOS tokenizer."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from llmsrt.testing import build_tiny_tokenizer
    from llmsrt.testing.tiny import build_tiny_gemma3

    torch.manual_seed(0)
    WhisperModel(WhisperConfig(num_mel_bins=MEL_BINS, d_model=WHISPER_WIDTH, encoder_layers=2,
                               encoder_attention_heads=2, encoder_ffn_dim=64, max_source_positions=1500,
                               decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64)
                 ).save_pretrained(folder / "whisper")
    WhisperFeatureExtractor(feature_size=MEL_BINS).save_pretrained(folder / "whisper")
    tokenizer = build_tiny_tokenizer(CORPUS, bos_token="<bos>")
    build_tiny_gemma3(len(tokenizer)).save_pretrained(folder / "gemma3")
    tokenizer.save_pretrained(folder / "gemma3")
    return folder / "whisper", folder / "gemma3"


def their_model(repo: Path, whisper: Path, llm: Path):
    """Their `slam_model` with their `qqm` projector on the tiny parts, and what supplying their environment took."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, WhisperModel

    projector_class, model_class, stubbed = import_their_code(repo)
    model_config = Fields(encoder_projector="qqm", encoder_projector_ds_rate=STRIDE, encoder_dim=WHISPER_WIDTH,
                          qformer_layers=QFORMER_LAYERS, query_len=QUERIES, encoder_path_hf=str(whisper),
                          encoder_name="whisper")
    language_model = AutoModelForCausalLM.from_pretrained(llm, dtype=torch.float32)
    model_config["llm_dim"] = language_model.config.get_text_config().hidden_size
    restored = []
    if not hasattr(type(language_model), "language_model"):
        type(language_model).language_model = property(lambda self: self.model.language_model)
        restored.append(f"{type(language_model).__name__}.language_model (-> model.language_model)")
    language_model = get_peft_model(language_model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                                target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    projector = projector_class(model_config)
    encoder = WhisperModel.from_pretrained(whisper).encoder.requires_grad_(False)
    model = model_class(encoder, language_model, projector, AutoTokenizer.from_pretrained(llm),
                        Fields(enable_deepspeed=False, freeze_encoder=True), model_config, metric=None).eval()
    perturb(projector.parameters(), 2)
    perturb([p for name, p in language_model.named_parameters() if "lora_" in name], 3)
    return model, stubbed, restored


def their_logits(model, feature_extractor, tokenizer, waveform: np.ndarray) -> tuple[torch.Tensor, list[int]]:
    """Their forward, fed as their inference collator feeds one clip."""
    padded = np.pad(waveform, (0, 30 * 16000 - waveform.size))  # whisper.pad_or_trim
    mel = feature_extractor(padded, sampling_rate=16000, return_tensors="pt")["input_features"]  # (1, 128, 3000)
    input_ids = torch.tensor([[-1] * EMBEDDINGS + tokenizer.encode(PROMPT)])
    ids = [0] * EMBEDDINGS + input_ids[0, EMBEDDINGS:].tolist()
    modality_mask = input_ids == -1
    with torch.no_grad():
        outputs, _ = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                           audio_mel=mel.permute(0, 2, 1), modality_mask=modality_mask)
    return outputs.logits, ids


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--authors_repo", required=True, type=Path, help="A checkout of yxduir/m2m-70.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where to write the parts, file and folder.")
    args = parser.parse_args(argv)
    import transformers
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, AutoTokenizer, WhisperFeatureExtractor

    from llmsrt.conversion.convert_llm_srt_checkpoint import main as convert

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mcat-parity-"))
    whisper, llm = build_parts(workdir)
    model, stubbed, restored = their_model(args.authors_repo, whisper, llm)
    commit = subprocess.run(["git", "-C", str(args.authors_repo), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown (not a git checkout)"
    print(f"authors' code: {args.authors_repo} (commit {commit}); transformers {transformers.__version__}, "
          f"torch {torch.__version__}")
    print(f"stubbed (imported at load, never called here): {stubbed or 'none'}; given back: {restored or 'none'}")
    trained = {name: p.detach().bfloat16() for name, p in model.named_parameters() if p.requires_grad}
    vision = sum("vision_tower" in name for name in trained)
    torch.save(trained, workdir / "mcat_tiny.pt")
    print(f"their file: {len(trained)} tensors ({vision} of them vision-tower LoRA), bf16")
    convert(["--checkpoint", str(workdir / "mcat_tiny.pt"), "--whisper", str(whisper), "--llm", str(llm),
             "--output_dir", str(workdir / "converted")])

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import make_clip  # a speech-like test signal

    converted = AutoModelForSpeechSeq2Seq.from_pretrained(workdir / "converted", trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(workdir / "converted", trust_remote_code=True)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
    tokenizer = AutoTokenizer.from_pretrained(llm)
    worst = 0.0
    for seconds, seed in ((1.5, 1), (4.0, 2), (12.0, 3)):
        waveform = make_clip(seconds, seed)
        expected, their_ids = their_logits(model, feature_extractor, tokenizer, waveform)
        batch = processor(audio=waveform, sampling_rate=16000, src_lang="eng", tgt_lang="deu")
        ids = batch["input_ids"][0].tolist()
        same_layout = ids[EMBEDDINGS:] == their_ids[EMBEDDINGS:] and len(ids) == len(their_ids)
        with torch.no_grad():
            logits = converted(**batch).logits[..., : expected.shape[-1]]
        difference = (logits - expected).abs().max().item()
        worst = max(worst, difference)
        print(f"clip {seconds:4.1f} s: ids [30 audio]{'[<bos>]' if ids[EMBEDDINGS] == tokenizer.bos_token_id else ''}"
              f"[tags] {'equal' if same_layout else 'DIFFERENT'}; max |logits - theirs| = {difference:.3g} "
              f"(logits up to {expected.abs().max().item():.3g}), argmax equal: "
              f"{bool((logits.argmax(-1) == expected.argmax(-1)).all())}")
        if not same_layout:
            raise SystemExit("The prompt ids differ from their collator's.")
    print(f"max |logits - theirs| over the clips: {worst:.3g} ({'within' if worst < 1e-4 else 'OVER'} 1e-4)")
    if worst >= 1e-4:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
