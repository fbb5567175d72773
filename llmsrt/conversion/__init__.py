"""Converters of third-party checkpoints into transformers folders."""
