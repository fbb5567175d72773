"""The recipe's memory options with LoRA, the frozen encoder and the trainable adapter: activation (gradient)
checkpointing recomputes the layers and changes no loss or gradient; bf16 autocast follows the fp32 trajectory."""

import copy
import json

import pytest
import torch
from helpers import SAMPLING_RATE, make_clip
from test_training import RECIPE, losses

from llmsrt.training import main
from llmsrt.training.model_setup import configure_trainable

# bf16 keeps 8 bits of mantissa: the tiny SRT stage's losses under autocast stay within 3% of fp32 over 8 steps
# (measured on an AMD EPYC Zen 3 without native bf16, where the CPU emulates it: at most 0.95%).
BF16_LOSS_RTOL = 3e-2


def count_calls(module: torch.nn.Module) -> list[int]:
    """Calls of `module.forward` (a recomputation inside a checkpoint runs no module hooks, so count here)."""
    calls, forward = [0], module.forward

    def counted(*args, **kwargs):
        calls[0] += 1
        return forward(*args, **kwargs)

    module.forward = counted
    return calls


@pytest.mark.parametrize("parts", [["adapter"], ["adapter", "lora"], ["lora"]])
def test_activation_checkpointing_recomputes_and_keeps_loss_and_gradients(lively, parts):
    model, processor = lively
    batch = processor(audio=[make_clip(1.0, 0), make_clip(2.0, 1)], sampling_rate=SAMPLING_RATE, src_lang="eng",
                      tgt_lang="deu", task="srt", targets=[{"transcription": "a b", "translation": "c"},
                                                           {"transcription": "d", "translation": "e f"}]).data
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same LoRA initialisation
        trained = configure_trainable(copy.deepcopy(model), parts)
        inner = trained.base_model.model if "lora" in parts else trained
        if checkpointing:
            trained.activation_checkpointing_enable()  # what the Trainer calls for `activation_checkpointing: true`
        trained.train()
        decoder_calls = count_calls(inner.language_model.model.layers[0].mlp)
        qformer_calls = count_calls(inner.speech_adapter.qformer.encoder.layer[0].attention)
        encoder_calls = count_calls(inner.audio_encoder.layers[0].fc1)
        saved = [0]

        def pack(tensor, saved=saved):
            saved[0] += 1
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = trained(**batch).loss
        loss.backward()
        grads = {name: p.grad.clone() for name, p in trained.named_parameters() if p.requires_grad}
        assert grads and not any("audio_encoder" in name for name in grads)
        results.append((loss.detach(), grads, saved[0]))
        # Checkpointed, a trained layer runs again in the backward pass; the frozen encoder never does.
        assert decoder_calls[0] == (2 if checkpointing else 1)
        assert qformer_calls[0] == (2 if checkpointing and "adapter" in parts else 1)
        assert encoder_calls[0] == 1
    (plain_loss, plain_grads, plain_saved), (checkpointed_loss, checkpointed_grads, checkpointed_saved) = results
    assert checkpointed_saved < plain_saved / 2  # what the forward keeps for the backward: the memory saved
    torch.testing.assert_close(checkpointed_loss, plain_loss, rtol=0, atol=0)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def _srt(tmp_path, name, *options):
    output = tmp_path / name
    main([RECIPE, "--curriculum_stages", "srt", "--max_steps", "8", "--logging_steps", "1", "--save_strategy", "no",
          "--lora_dropout", "0", "--disable_tqdm", "true", "--output_dir", str(output), *options])
    return losses(output / "srt")


def test_recipe_options_bf16_and_activation_checkpointing_train_the_srt_stage(tmp_path):
    """The SRT stage (frozen encoder, LoRA and adapter training) through train.py's options."""
    fp32 = _srt(tmp_path, "fp32")
    assert _srt(tmp_path, "checkpointed", "--activation_checkpointing", "true") == pytest.approx(fp32, rel=1e-6)
    bf16 = _srt(tmp_path, "bf16", "--bf16", "true")
    assert len(bf16) == len(fp32) == 8 and bf16 != fp32  # autocast is in effect...
    assert bf16 == pytest.approx(fp32, rel=BF16_LOSS_RTOL)  # ...and follows fp32
    state = json.loads((tmp_path / "bf16" / "srt" / "stage_info.json").read_text())
    assert state["settings"]["train"] == ["adapter", "lora"]


@pytest.mark.slow
def test_activation_checkpointing_in_the_align_stage(tmp_path):
    """The align stage trains the adapter through its own wrapper, which passes checkpointing on to the Q-Former."""
    runs = {}
    for name, options in (("plain", []), ("checkpointed", ["--activation_checkpointing", "true"])):
        main([RECIPE, "--curriculum_stages", "align", "--max_steps", "4", "--logging_steps", "1", "--save_strategy",
              "no", "--disable_tqdm", "true", "--output_dir", str(tmp_path / name), *options])
        runs[name] = losses(tmp_path / name / "align")
    assert len(runs["plain"]) == 4 and runs["checkpointed"] == pytest.approx(runs["plain"], rel=1e-6)
