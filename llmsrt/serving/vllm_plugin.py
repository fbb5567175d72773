"""The `vllm.general_plugins` entry point of llmsrt (setup.py: `llmsrt = llmsrt.serving.vllm_plugin:register`).

vLLM calls `register()` in every process it starts (the API server, the engine core, each worker), before it reads
a model folder's config. The model class is registered by name, so that vLLM imports it only where a model is built.
"""

ARCHITECTURE = "LLMSRTForConditionalGeneration"
MODEL_CLASS = "llmsrt.serving.vllm_model:LLMSRTForConditionalGeneration"


def register() -> None:
    """Register llmsrt's config with transformers' Auto classes and the model class with vLLM (idempotent)."""
    from vllm import ModelRegistry

    import llmsrt  # noqa: F401  (registers LLMSRTConfig and LLMSRTProcessor with AutoConfig / AutoProcessor)

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
