"""Compiled decoding: a static KV cache and a `torch.compile`d LLM step per new token, with the tokens of eager
decoding (tests/test_compiled_decoding.py, greedy and beam).

    from llmsrt.inference import use_compiled_decoding
    use_compiled_decoding(model)          # then model.generate / the pipeline as before
"""

import torch


def use_compiled_decoding(model, backend: str = "inductor", mode: str | None = None, **compile_options) -> None:
    """Make `model` (an `LLMSRTForConditionalGeneration`) decode with a static KV cache and a compiled step, on every
    device, so `generate` and the pipeline keep their interface and give the same tokens as eager decoding.

    Public switches only: transformers' `cache_implementation="static"` and `compile_config` go into
    `model.generation_config` (transformers compiles the whole step with them by itself on GPUs); where transformers
    does not compile (a CPU), the model's `forward` sends each decode step (one token, no audio, a compilable cache)
    through the LLM compiled here with the same settings (`model.compiled_decode_step`). The audio embeddings are
    merged at prefill, which runs eagerly (its length varies with the prompt); every later step reads one token
    through the compiled graph at a fixed cache shape. Call it again after replacing `language_model` (e.g. merging
    LoRA).

    Args:
        backend: `torch.compile` backend (`"inductor"`; `"aot_eager"` compiles in seconds, for checks).
        mode: `torch.compile` mode; `None`: `"reduce-overhead"` (CUDA graphs) for inductor on a GPU, `"default"` for
            inductor elsewhere, none for other backends.
        compile_options: further `CompileConfig` fields (`fullgraph`, `dynamic`, `options`).
    """
    from transformers.generation import CompileConfig

    if mode is None and backend == "inductor":
        mode = "reduce-overhead" if model.device.type == "cuda" else "default"
    compile_config = CompileConfig(backend=backend, mode=mode, **compile_options)
    model.generation_config.cache_implementation = "static"
    model.generation_config.compile_config = compile_config
    model.compiled_decode_step = torch.compile(model.language_model.__call__, **compile_config.to_dict())


__all__ = ["use_compiled_decoding"]
