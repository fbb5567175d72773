"""The CPU inference path: `quantize_for_cpu` (int8 dynamic quantisation of the LLM's linear layers, or bf16) runs
through the model and the pipeline and keeps the logits close to the float32 model's."""

import copy

import pytest
import torch
from helpers import SAMPLING_RATE, make_clip, save_model
from torch import nn
from transformers import pipeline

from llmsrt.inference.quantization import quantize_for_cpu

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6, "no_repeat_ngram_size": 0}


def logits_of(model, processor):
    batch = processor(audio=[make_clip(1.0, 1), make_clip(2.0, 2)], sampling_rate=SAMPLING_RATE,
                      src_lang=["eng", "deu"], tgt_lang=["deu", "fra"])
    with torch.no_grad():
        return model(**batch).logits.float()


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_cpu_modes_keep_logits_close(lively, mode):
    model, processor = lively
    converted = quantize_for_cpu(copy.deepcopy(model), mode, keep_float=())
    reference, logits = logits_of(model, processor), logits_of(converted, processor)
    assert not torch.equal(logits, reference)  # converted for real
    assert (logits - reference).norm() / reference.norm() < 0.2
    assert nn.functional.cosine_similarity(logits.flatten(), reference.flatten(), dim=0) > 0.98
    linear_types = {type(m) for m in converted.language_model.modules() if "Linear" in type(m).__name__}
    if mode == "int8":
        assert nn.Linear not in linear_types and converted.language_model.lm_head.weight().dtype == torch.qint8
    else:
        assert converted.language_model.dtype == torch.bfloat16
    assert all(type(m) is not torch.ao.nn.quantized.dynamic.Linear for m in converted.audio_encoder.modules())


def test_int8_keeps_the_mlp_output_projections_in_float_by_default(lively):
    model, processor = lively
    converted = quantize_for_cpu(copy.deepcopy(model))
    layers = dict(converted.language_model.named_modules())
    kept = [name for name in layers if name.endswith("down_proj")]
    assert kept and all(type(layers[name]) is nn.Linear for name in kept)
    assert all(type(layers[name]) is torch.ao.nn.quantized.dynamic.Linear for name in layers
               if name.endswith(("up_proj", "gate_proj", "q_proj", "o_proj")))
    reference, logits = logits_of(model, processor), logits_of(converted, processor)
    assert not torch.equal(logits, reference) and (logits - reference).norm() / reference.norm() < 0.2


def test_int8_model_runs_through_the_pipeline(lively, tmp_path, wav_file):
    model, processor = lively
    translator = pipeline("speech-translation", model=str(save_model(tmp_path / "m", model, processor)),
                          trust_remote_code=True)
    quantize_for_cpu(translator.model)
    result = translator(str(wav_file), src_lang="eng", tgt_lang="deu", generate_kwargs=GREEDY)
    batch = processor(audio=str(wav_file), src_lang="eng", tgt_lang="deu")
    answer = translator.model.generate(**batch, **GREEDY)[:, batch["input_ids"].shape[1]:]
    assert {k: result[k] for k in ("transcription", "translation")} == \
        processor.post_process_speech_translation(answer, "srt", "eng", "deu")[0]


def test_bad_cpu_mode_or_part_is_refused(lively):
    model, _ = lively
    with pytest.raises(ValueError, match="'int4'"):
        quantize_for_cpu(model, "int4")
    with pytest.raises(ValueError, match=r"parts.*got \('decoder',\)"):
        quantize_for_cpu(model, parts=("decoder",))


def test_eval_scores_a_quantised_model(lively, tmp_path):
    """`eval.py --quantize int8` scores the int8 model (the quality check of the CPU path): its teacher-forced losses
    differ from fp32's, and the results say which model was scored."""
    from llmsrt.data.toy import build_toy_corpus
    from llmsrt.evaluation import EvalArguments, evaluate_model

    model, processor = lively
    model_dir = save_model(tmp_path / "model", model, processor)
    manifest = build_toy_corpus(tmp_path / "toy")
    results = {}
    for mode in ("none", "int8"):
        results[mode] = evaluate_model(EvalArguments(
            model=str(model_dir), output_dir=str(tmp_path / mode), manifest=str(manifest), max_samples=6,
            batch_size=3, num_beams=1, max_new_tokens=4, comet_model="none", device="cpu", quantize=mode))
    assert results["int8"]["quantize"] == "int8" and results["none"]["quantize"] == "none"
    assert results["int8"]["examples"] == results["none"]["examples"] == 6
    own = [results[mode]["audio_gain"]["own_audio_loss"] for mode in ("none", "int8")]
    assert own[0] != own[1] and own[1] == pytest.approx(own[0], rel=0.1)
    with pytest.raises(ValueError, match="int8 or bf16; got 'int4'"):
        EvalArguments(model="m", output_dir="o", quantize="int4")
