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
        "llmsrt": ["metrics/*/*.py", "evaluation/reference/*.csv", "data/*.tsv"],
        "llmsrt.model_cards": ["*.md"],
    },
    install_requires=[
        # Install the CPU wheel first (`pip install torch==2.13.0`): a bare `torch` pulls a multi-GB CUDA build.
        "torch>=2.4",
        "transformers>=5.24,<5.25",
        "peft>=0.21.2,<0.23",
        "datasets>=5.0",
        "evaluate>=0.4.6",
        "accelerate>=1.10",
        "librosa>=0.11",
        "soundfile>=0.12",  # its wheels bundle libsndfile >= 1.1, which reads MP3 (Common Voice, CoVoST-2)
        "soxr>=0.3.2",  # 16-kHz resampling of the training clips (also what librosa resamples with)
        "huggingface-hub>=1.0",
        "safetensors>=0.6",
        "sacrebleu>=2.4",
        "jiwer>=4.0",
        "pyyaml>=6.0",
        "matplotlib>=3.8",
        "gguf>=0.10",
        "srt>=3.5",  # subtitle files (python -m llmsrt.translate)
        "webvtt-py>=0.5",
    ],
    extras_require={
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "espeakng-loader>=0.2.4", "pypinyin>=0.50", "cn2an>=0.5",
                "wordfreq>=3.1", "grimp>=3.5"],  # grimp: the import-graph test
        # speech synthesis for the demo corpus, from PyPI only; Chinese templates spoken from pinyin; word lists
        "demo": ["espeakng-loader>=0.2.4", "pypinyin>=0.50", "cn2an>=0.5", "wordfreq>=3.1"],
        "bench": ["ctranslate2>=4.5", "faster-whisper>=1.1"],  # benchmarks/cpu_inference.py: the CTranslate2 cascade
        "comet": ["unbabel-comet>=2.2"],
        # The web demo (python -m llmsrt.app) and its browser test (Playwright drives Debian's Chromium).
        "app": ["gradio>=5.0", "playwright>=1.40"],
        "video": ["av>=12"],  # audio inside video containers (MP4, MKV, WebM...) through FFmpeg's decoders
    },
)
