"""Serving LLM-SRT on vLLM (`pip install "llmsrt[vllm]"`): a vLLM model plugin, prompts, offline batches.

Nothing here is imported by `import llmsrt` or by the remote-code files, and importing this package does not import
vLLM: `llmsrt.serving.vllm_model` (the model class) and `llmsrt.serving.offline` (batches with `vllm.LLM`) do.

- `vllm_plugin.register`: the `vllm.general_plugins` entry point. It registers the `LLMSRTForConditionalGeneration`
  architecture with vLLM's model registry and llmsrt's config with transformers' `AutoConfig`.
- `prompts`: the text prompt of a request (`<|audio|>` then the language tags of the task).
"""
