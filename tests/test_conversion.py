"""The CTranslate2 -> transformers Whisper converter, on a tiny checkpoint the test writes in CTranslate2's format."""


import numpy as np
import pytest
import torch
from helpers import make_tiny_whisper, write_checkpoint
from transformers import WhisperForConditionalGeneration

from llmsrt.conversion.convert_ctranslate2_whisper_to_hf import convert_ctranslate2_whisper, main
from llmsrt.conversion.ctranslate2_format import read_model_bin, write_model_bin


@pytest.fixture(scope="module")
def tiny_whisper():
    return make_tiny_whisper()


def test_format_round_trip(tmp_path):
    arrays = {"a/weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7, dtype=np.int8),
              "c": np.ones(4, dtype=np.float16)}
    write_model_bin(tmp_path / "model.bin", "TestSpec", arrays, {"d": "a/weight"})
    spec, read = read_model_bin(tmp_path / "model.bin")
    assert spec == "TestSpec" and set(read) == {"a/weight", "b", "c", "d"}
    for name, array in arrays.items():
        assert read[name].dtype == array.dtype and np.array_equal(read[name], array)
    assert np.array_equal(read["d"], arrays["a/weight"])
    (tmp_path / "cut.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:40])
    with pytest.raises(ValueError, match="Truncated"):
        read_model_bin(tmp_path / "cut.bin")


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 0.0), (np.float16, 2e-3)])
def test_converted_model_matches_the_original(tiny_whisper, tmp_path, dtype, tolerance):
    checkpoint = write_checkpoint(tmp_path / "ct2", tiny_whisper, dtype)
    converted = convert_ctranslate2_whisper(checkpoint, tmp_path / "hf")
    reloaded = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
    assert reloaded.config.d_model == 32 and reloaded.config.encoder_layers == 2
    assert reloaded.config.max_target_positions == 32 and reloaded.config.vocab_size == 64
    features = torch.randn(2, 80, 3000)
    decoder_ids = torch.tensor([[1, 2, 6, 7, 20, 21], [1, 3, 6, 7, 30, 31]])
    with torch.no_grad():
        expected = tiny_whisper(input_features=features, decoder_input_ids=decoder_ids).logits
        got = reloaded(input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance * 50 or 1e-5)
    generation = reloaded.generation_config
    assert generation.lang_to_id == {"<|en|>": 2, "<|de|>": 3, "<|fr|>": 4}
    assert generation.task_to_id == {"translate": 5, "transcribe": 6} and generation.no_timestamps_token_id == 7
    assert generation.decoder_start_token_id == 1 and generation.suppress_tokens == [9, 10]
    assert converted.proj_out.weight.data_ptr() == converted.model.decoder.embed_tokens.weight.data_ptr()


def test_command_line(tiny_whisper, tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "ct2", tiny_whisper, np.float16)
    main(["--checkpoint_dir", str(checkpoint), "--output_dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "preprocessor_config.json").is_file()
    assert (tmp_path / "out" / "tokenizer.json").is_file() and "Saved" in capsys.readouterr().out
