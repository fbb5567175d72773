"""Operations on an LLM-SRT model that several layers share: LoRA on its LLM (`lora`: training, the Hub export,
benchmarks), the audio gain (`audio_gain`: training's logged diagnostics and evaluation) and language-ID features of its
encoder (`language_id_features`: training the head and scoring it). They import only the model files at the package
root, so training, evaluation and the hub can all use them (tests/test_import_graph.py: layer 0). Nothing here ships
inside a saved model folder."""
