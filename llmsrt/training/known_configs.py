"""The shapes of the pretrained parts the paper recipes name, for `llmsrt-plan` where the Hub cannot be reached.

Each entry holds the fields of the model's published `config.json` that decide its parameters and activations (the
rest take transformers' defaults, which do not change either). Only the encoder of a Whisper model is used.
"""

_WHISPER_LARGE_V3 = {"model_type": "whisper", "num_mel_bins": 128, "d_model": 1280, "encoder_layers": 32,
                     "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "decoder_layers": 32,
                     "decoder_attention_heads": 20, "decoder_ffn_dim": 5120, "max_source_positions": 1500,
                     "vocab_size": 51866}
_QWEN2_5 = {"model_type": "qwen2", "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6}

KNOWN_CONFIGS = {
    "openai/whisper-large-v3": _WHISPER_LARGE_V3,
    "openai/whisper-large-v3-turbo": {**_WHISPER_LARGE_V3, "decoder_layers": 4},
    "openai/whisper-base": {"model_type": "whisper", "num_mel_bins": 80, "d_model": 512, "encoder_layers": 6,
                            "encoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_layers": 6,
                            "decoder_attention_heads": 8, "decoder_ffn_dim": 2048, "max_source_positions": 1500,
                            "vocab_size": 51865},
    "Qwen/Qwen2.5-0.5B": {**_QWEN2_5, "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
                          "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                          "tie_word_embeddings": True},
    "Qwen/Qwen2.5-3B": {**_QWEN2_5, "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008,
                        "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
                        "tie_word_embeddings": True},
    "Qwen/Qwen2.5-7B": {**_QWEN2_5, "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
                        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                        "tie_word_embeddings": False},
    "Qwen/Qwen2.5-32B": {**_QWEN2_5, "vocab_size": 152064, "hidden_size": 5120, "intermediate_size": 27648,
                         "num_hidden_layers": 64, "num_attention_heads": 40, "num_key_value_heads": 8,
                         "tie_word_embeddings": False},
    # The text side of Gemma-3-27b (the vision tower of the published checkpoint is not part of LLM-SRT).
    "google/gemma-3-27b-it": {"model_type": "gemma3_text", "vocab_size": 262208, "hidden_size": 5376,
                              "intermediate_size": 21504, "num_hidden_layers": 62, "num_attention_heads": 32,
                              "num_key_value_heads": 16, "head_dim": 128, "query_pre_attn_scalar": 168,
                              "sliding_window": 1024, "rope_theta": 1000000.0, "max_position_embeddings": 131072,
                              "tie_word_embeddings": True},
}
for _name in ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-32B"):
    KNOWN_CONFIGS[f"{_name}-Instruct"] = KNOWN_CONFIGS[_name]
KNOWN_CONFIGS["google/gemma-3-27b-pt"] = KNOWN_CONFIGS["google/gemma-3-27b-it"]
