"""Folders saved by earlier llmsrt code keep loading and computing the same: tests/fixtures/folder-0.1.0 was saved
before the modeling file was split (tests/fixtures/save_reference_folder.py says how), with the logits and language
probabilities it computed then."""

from pathlib import Path

import torch
from fixtures.save_reference_folder import CLIPS, reference_inputs
from helpers import make_clip

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor

FOLDER = Path(__file__).parent / "fixtures" / "folder-0.1.0"


def test_a_folder_saved_before_the_split_loads_and_computes_the_same():
    model = LLMSRTForConditionalGeneration.from_pretrained(FOLDER).eval()
    processor = LLMSRTProcessor.from_pretrained(FOLDER)
    expected = torch.load(FOLDER / "expected.pt")
    assert model.language_id_head is not None and model.config.language_id_languages == ["eng", "deu", "fra"]
    assert not any(parameter.requires_grad for parameter in model.audio_encoder.parameters())
    language_inputs = processor.language_id_inputs([make_clip(seconds, seed) for seconds, seed in CLIPS])
    with torch.no_grad():
        logits = model(**reference_inputs(processor)).logits
        languages = model.detect_language(**language_inputs)
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(languages, expected["languages"], rtol=1e-5, atol=1e-6)
