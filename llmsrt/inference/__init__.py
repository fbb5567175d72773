"""Tools that run a trained LLM-SRT model: the subtitles CLI (`python -m llmsrt.inference.translate`, console script
`llmsrt-translate`), the subtitle writers, the web app (`python -m llmsrt.inference.app`, `llmsrt-app`), the CPU
quantization (`quantize_for_cpu`) and compiled decoding (`use_compiled_decoding`). They import only the model files
at the package root; evaluation imports the quantization. Nothing here ships inside a saved model folder."""

from .compiled_decoding import use_compiled_decoding

__all__ = ["use_compiled_decoding"]
