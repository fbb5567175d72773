"""The cascade a user would build instead of LLM-SRT: Whisper transcribes, then a chat LLM translates the
transcript zero-shot with a plain instruction. Its predictions are records like `generate_predictions`'s, so the
same scoring and report apply."""

from collections import defaultdict

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, WhisperForConditionalGeneration, WhisperProcessor

from ..data.schema import SAMPLING_RATE
from ..languages import get_language

TRANSLATION_INSTRUCTION = "Translate the following {source} text into {target}. Reply with the translation only.\n\n"


class CascadeTranslator:
    """Whisper (`whisper`: Hub id or folder) then a causal LM with a chat template (`llm`), both greedy.

    Args:
        max_new_tokens: limit of each transcript and each translation.
    """

    def __init__(self, whisper: str, llm: str, device: str = "cpu", max_new_tokens: int = 64):
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.device, self.max_new_tokens = device, max_new_tokens
        self.asr_processor = WhisperProcessor.from_pretrained(whisper)
        self.asr = WhisperForConditionalGeneration.from_pretrained(whisper, dtype=dtype).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(llm, padding_side="left")
        if self.tokenizer.chat_template is None:
            raise ValueError(f"The cascade's LLM {llm!r} has no chat template: use an instruction-tuned model.")
        self.llm = AutoModelForCausalLM.from_pretrained(llm, dtype=dtype).to(device).eval()

    @torch.no_grad()
    def transcribe(self, waveforms: list, languages: list[str]) -> list[str]:
        """16-kHz waveforms and their ISO 639-3 languages -> transcripts (Whisper is told the language)."""
        out = [""] * len(waveforms)
        by_language = defaultdict(list)
        for index, language in enumerate(languages):
            by_language[language].append(index)
        for language, indices in by_language.items():
            whisper_code = get_language(language).whisper
            if whisper_code is None:
                raise ValueError(f"Whisper has no language code for {language!r}: the cascade cannot transcribe it.")
            features = self.asr_processor.feature_extractor(
                [waveforms[i] for i in indices], sampling_rate=SAMPLING_RATE, return_tensors="pt"
            ).input_features.to(self.device, self.asr.dtype)
            generated = self.asr.generate(features, language=whisper_code, task="transcribe",
                                          max_new_tokens=self.max_new_tokens)
            for index, text in zip(indices, self.asr_processor.batch_decode(generated, skip_special_tokens=True)):
                out[index] = text.strip()
        return out

    def prompt(self, text: str, source: str, target: str) -> str:
        instruction = TRANSLATION_INSTRUCTION.format(source=get_language(source).name, target=get_language(target).name)
        return self.tokenizer.apply_chat_template([{"role": "user", "content": instruction + text}],
                                                  tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def translate(self, texts: list[str], sources: list[str], targets: list[str]) -> list[str]:
        prompts = [self.prompt(text, s, t) for text, s, t in zip(texts, sources, targets)]
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        generated = self.llm.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id)
        answers = self.tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return [first_line(answer) for answer in answers]


def first_line(answer: str) -> str:
    """The translation, without the comment a chat model often adds after it ("This translation keeps...")."""
    return next((line.strip() for line in answer.splitlines() if line.strip()), "")


def generate_cascade_predictions(cascade: CascadeTranslator, examples, batch_size: int) -> list[dict]:
    """Transcribe then translate every example; records as `generate_predictions` writes them."""
    from .evaluator import predict_all

    def translate_batch(waveforms, sources, targets):
        transcripts = cascade.transcribe(waveforms, sources)
        return list(zip(transcripts, cascade.translate(transcripts, sources, targets)))

    return predict_all(examples, batch_size, translate_batch, "cascade")
