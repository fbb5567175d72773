"""A saved folder loads with trust_remote_code in a fresh Python process where llmsrt cannot be imported."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
from helpers import SAMPLING_RATE, WITHOUT_LLMSRT, make_clip, save_model
from transformers import pipeline

import llmsrt

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 5, "no_repeat_ngram_size": 0}

FRESH_PROCESS = WITHOUT_LLMSRT + textwrap.dedent(
    """
    import json
    import numpy as np, torch
    from transformers import AutoConfig, AutoModel, AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline
    folder, clip_file, wav, out_file, greedy = sys.argv[1:6]
    greedy = json.loads(greedy)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    seq2seq = AutoModelForSpeechSeq2Seq.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    clip = np.load(clip_file)
    batch = processor(audio=clip, sampling_rate=16000, src_lang="eng", tgt_lang="deu")
    with torch.no_grad():
        logits = model(**batch).logits
        same = torch.equal(seq2seq(**batch).logits, logits)
        generated = model.generate(**batch, **greedy)[0, batch["input_ids"].shape[1]:].tolist()
    translator = pipeline("speech-translation", model=folder, trust_remote_code=True)
    result = translator(wav, src_lang="eng", tgt_lang="fra", generate_kwargs=greedy)
    frozen = not any(p.requires_grad for p in model.audio_encoder.parameters())
    torch.save({"logits": logits, "generated": generated, "same": same, "result": result,
                "config": type(config).__name__, "frozen": frozen, "llmsrt_loaded": "llmsrt" in sys.modules}, out_file)
    """
)


def test_fresh_process_without_the_package_gives_identical_outputs(lively, tmp_path, wav_file):
    model, processor = lively
    folder = save_model(tmp_path / "saved", model, processor)
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForSpeechSeq2Seq"}
    assert "speech-translation" in config["custom_pipelines"]

    clip = make_clip(1.5, 7)
    np.save(tmp_path / "clip.npy", clip)
    out_file = tmp_path / "out.pt"
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    env_modules = tmp_path / "hf_modules"
    subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "clip.npy"), str(wav_file), str(out_file),
         json.dumps(GREEDY)],
        check=True,
        cwd=tmp_path,
        env={"HF_MODULES_CACHE": str(env_modules), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    fresh = torch.load(out_file, weights_only=False)
    assert not fresh["llmsrt_loaded"] and fresh["config"] == "LLMSRTConfig" and fresh["frozen"] and fresh["same"]

    batch = processor(audio=clip, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    with torch.no_grad():
        torch.testing.assert_close(fresh["logits"], model(**batch).logits, rtol=0, atol=0)
        expected = model.generate(**batch, **GREEDY)[0, batch["input_ids"].shape[1] :].tolist()
    assert fresh["generated"] == expected
    local = pipeline("speech-translation", model=model, processor=processor)
    assert fresh["result"] == local(str(wav_file), src_lang="eng", tgt_lang="fra", generate_kwargs=GREEDY)


# What remote code may import outside `try`: torch, transformers, librosa and what they bring (numpy, soxr and
# soundfile come with librosa; huggingface_hub, safetensors and tokenizers with transformers).
REMOTE_CODE_PACKAGES = {"torch", "transformers", "librosa", "numpy", "soxr", "soundfile", "huggingface_hub",
                        "safetensors", "tokenizers"}


def test_remote_code_imports_only_torch_transformers_librosa(saved_tiny):
    """transformers' own scan (`get_imports`, which skips `try` blocks, as `check_imports` does) over every Python
    file a saved folder carries: any other top-level package (PyAV, Gradio, datasets, ...) must be optional."""
    from transformers.dynamic_module_utils import check_imports, get_imports

    files = sorted(saved_tiny.glob("*.py"))
    assert {path.name for path in files} >= {"configuration_llmsrt.py", "modeling_llmsrt.py", "processing_llmsrt.py",
                                             "pipeline_llmsrt.py", "segmentation.py"}
    allowed = REMOTE_CODE_PACKAGES | set(sys.stdlib_module_names)
    demanded = {path.name: set(get_imports(str(path))) - allowed for path in files}
    assert {name: packages for name, packages in demanded.items() if packages} == {}
    for path in files:
        check_imports(str(path))  # raises ImportError for a package that is missing here


def test_the_package_root_holds_exactly_the_remote_code_files(saved_tiny):
    """What a saved folder carries (the four Auto files and what they import, recursively) is the package root's
    modules, `__init__.py` aside: every other part of llmsrt lives in a subpackage by role."""
    root = Path(llmsrt.__file__).parent
    carried = {path.name for path in saved_tiny.glob("*.py")}
    assert {"configuration_llmsrt.py", "modeling_llmsrt.py", "processing_llmsrt.py", "pipeline_llmsrt.py"} <= carried
    assert {path.name for path in root.glob("*.py")} - {"__init__.py"} == carried


def test_the_scan_sees_an_optional_package_outside_try(tmp_path):
    """The check itself: `import av` inside a function, outside `try`, is demanded; inside `try` it is not."""
    from transformers.dynamic_module_utils import get_imports

    bare, guarded = tmp_path / "bare.py", tmp_path / "guarded.py"
    bare.write_text("def decode():\n    import av\n")
    guarded.write_text("def decode():\n    try:\n        import av\n    except ImportError:\n        raise\n")
    assert "av" in get_imports(str(bare)) and "av" not in get_imports(str(guarded))
