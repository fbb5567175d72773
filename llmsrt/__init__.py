"""llmsrt: LLM-based many-to-many speech-to-text translation (LLM-SRT, arXiv 2409.19510) for transformers.

Importing the package registers the classes with transformers' Auto classes and the `speech-translation`
pipeline task, and marks them for remote code so that `save_pretrained` writes code and `auto_map`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_llmsrt import LLMSRTConfig
from .languages import LANGUAGES, PAPER_LANGUAGES, get_language
from .modeling_llmsrt import LLMSRTForConditionalGeneration
from .pipeline_llmsrt import SpeechTranslationPipeline
from .processing_llmsrt import LLMSRTProcessor

__version__ = "0.1.0"

AutoConfig.register(LLMSRTConfig.model_type, LLMSRTConfig, exist_ok=True)
AutoModel.register(LLMSRTConfig, LLMSRTForConditionalGeneration, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(LLMSRTConfig, LLMSRTForConditionalGeneration, exist_ok=True)
AutoProcessor.register(LLMSRTConfig, LLMSRTProcessor, exist_ok=True)
PIPELINE_REGISTRY.register_pipeline(
    "speech-translation",
    pipeline_class=SpeechTranslationPipeline,
    pt_model=AutoModelForSpeechSeq2Seq,
    type="multimodal",
)
LLMSRTConfig.register_for_auto_class()
LLMSRTForConditionalGeneration.register_for_auto_class("AutoModelForSpeechSeq2Seq")
LLMSRTProcessor.register_for_auto_class()

__all__ = [
    "LANGUAGES",
    "PAPER_LANGUAGES",
    "LLMSRTConfig",
    "LLMSRTForConditionalGeneration",
    "LLMSRTProcessor",
    "SpeechTranslationPipeline",
    "get_language",
]
