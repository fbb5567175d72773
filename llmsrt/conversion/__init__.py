"""Converters of third-party checkpoints into transformers folders: a CTranslate2 (faster-whisper) Whisper, and the
authors' LLM-SRT checkpoint."""
