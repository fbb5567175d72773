"""Fresh environments, as a user gets them (slow: each builds a virtualenv from PyPI, about a minute):

- torch, transformers and librosa only, llmsrt not installed: a saved folder loads with AutoModel, AutoProcessor and
  `pipeline("speech-translation", trust_remote_code=True)` and translates a WAV file;
- the wheel `python -m build` makes, installed: the pipeline, eval.py's metric module, the model-card template, the
  demo data files and the console scripts, all from the installed package, not this checkout.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import librosa
import pytest
import torch
import transformers
from helpers import save_model
from transformers import pipeline

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[1]
GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 5, "no_repeat_ngram_size": 0}
# The releases this process runs with, so that the fresh environment is the one these tests ran against.
SAME_RELEASES = [f"transformers=={transformers.__version__}", f"librosa=={librosa.__version__}"]
TORCH = f"torch=={torch.__version__.split('+')[0]}"  # the CPU wheel (pip finds the local one first)

TRANSLATE_SCRIPT = """
import importlib.util, json, sys
folder, wav, out_file = sys.argv[1:4]
from transformers import AutoModel, AutoProcessor, pipeline
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
translator = pipeline("speech-translation", model=folder, trust_remote_code=True)
result = translator(wav, src_lang="eng", tgt_lang="deu", generate_kwargs=json.loads(sys.argv[4]))
json.dump({"result": result, "model": type(model).__name__, "processor": type(processor).__name__,
           "llmsrt_installed": importlib.util.find_spec("llmsrt") is not None}, open(out_file, "w"))
"""


def clean_env(tmp_path: Path) -> dict:
    """No PYTHONPATH (which would show this checkout), a private HF modules cache, offline Hub."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf_modules"), HF_HUB_OFFLINE="1")
    return env


def fresh_venv(folder: Path, *requirements: str) -> Path:
    """A new virtualenv (no system site-packages) with the CPU torch, then `requirements`; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for step in ([TORCH], list(requirements)):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *step], check=True, env=env, timeout=900)
    return python


def run_in(python: Path, script: str, *args, tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    subprocess.run([str(python), str(path), *map(str, args)], check=True, cwd=tmp_path, env=clean_env(tmp_path),
                   timeout=600)


@pytest.fixture
def saved_folder(lively, tmp_path):
    model, processor = lively
    return save_model(tmp_path / "saved", model, processor)


def local_translation(folder: Path, wav_file) -> list | dict:
    translator = pipeline("speech-translation", model=str(folder), trust_remote_code=True)
    return translator(str(wav_file), src_lang="eng", tgt_lang="deu", generate_kwargs=GREEDY)


def test_remote_code_runs_with_torch_transformers_librosa_only(saved_folder, wav_file, tmp_path):
    python = fresh_venv(tmp_path / "venv", *SAME_RELEASES)
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True,
                            text=True, env=clean_env(tmp_path)).stdout
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert installed & {"llmsrt", "av", "gradio", "datasets", "peft", "evaluate"} == set()

    run_in(python, TRANSLATE_SCRIPT, saved_folder, wav_file, tmp_path / "out.json", json.dumps(GREEDY),
           tmp_path=tmp_path)
    fresh = json.loads((tmp_path / "out.json").read_text())
    assert not fresh["llmsrt_installed"]
    assert (fresh["model"], fresh["processor"]) == ("LLMSRTForConditionalGeneration", "LLMSRTProcessor")
    assert fresh["result"] == json.loads(json.dumps(local_translation(saved_folder, wav_file)))


WHEEL_SCRIPT = """
import json, subprocess, sys
from importlib.resources import files
from pathlib import Path
folder, wav, out_file, checkout = sys.argv[1:5]
import evaluate
import llmsrt
from llmsrt.demo.corpus import read_sentences
from llmsrt.demo.templates import fill_templates
from llmsrt.hub.card import TEMPLATE, render_model_card
from llmsrt.evaluation import SPEECH_TRANSLATION_METRIC
from transformers import pipeline
metric = evaluate.load(SPEECH_TRANSLATION_METRIC)
scores = metric.compute(predictions=["der zug fährt um neun ab"], references=["der zug fährt um neun ab"],
                        tgt_lang="deu")
translator = pipeline("speech-translation", model=folder, trust_remote_code=True)
result = translator(wav, src_lang="eng", tgt_lang="deu", generate_kwargs=json.loads(sys.argv[5]))
scripts = {name: subprocess.run([str(Path(sys.executable).with_name(name)), "--help"], capture_output=True).returncode
           for name in ("llmsrt-translate", "llmsrt-convert", "llmsrt-eval", "llmsrt-train", "llmsrt-hub")}
paths = [llmsrt.__file__, SPEECH_TRANSLATION_METRIC, str(TEMPLATE), str(files("llmsrt.demo") / "sentences.tsv")]
json.dump({"result": result, "scores": scores, "paths": paths, "scripts": scripts,
           "sentences": len(read_sentences()), "templates": len(fill_templates(3, ["eng", "deu"])),
           "card": "trust_remote_code=True" in str(render_model_card(folder))}, open(out_file, "w"))
"""


def test_the_wheel_installs_and_runs_from_the_installed_package(saved_folder, wav_file, tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(CHECKOUT)], check=True,
                   capture_output=True, timeout=900)
    (wheel,) = dist.glob("llmsrt-*.whl")
    python = fresh_venv(tmp_path / "venv", f"{wheel}[demo]", *SAME_RELEASES)  # demo: the demo data readers

    run_in(python, WHEEL_SCRIPT, saved_folder, wav_file, tmp_path / "out.json", CHECKOUT, json.dumps(GREEDY),
           tmp_path=tmp_path)
    fresh = json.loads((tmp_path / "out.json").read_text())
    site = str(tmp_path / "venv")
    assert all(path.startswith(site) for path in fresh["paths"]), fresh["paths"]  # not this checkout
    assert fresh["scores"]["bleu"] == pytest.approx(100.0)
    assert fresh["sentences"] > 0 and fresh["templates"] == 3 and fresh["card"]
    assert fresh["scripts"] == dict.fromkeys(fresh["scripts"], 0)
    assert fresh["result"] == json.loads(json.dumps(local_translation(saved_folder, wav_file)))
