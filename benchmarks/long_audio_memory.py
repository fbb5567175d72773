"""Peak memory of translating a long recording: 10 minutes vs 1 hour of eSpeak sentences with pauses.

Each length runs in a fresh process: write a 16-kHz WAV (in blocks), load a tiny model, translate the file with
`return_timestamps=True` (segments cut at pauses, read in 30-s blocks) and report the resident memory the run added
on top of the loaded model (peak RSS minus RSS before). Memory that grows with the length would show as a ratio
well above 1.

    OMP_NUM_THREADS=1 python benchmarks/long_audio_memory.py
Writes benchmarks/results/long-audio-memory.json.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
import numpy as np, soundfile as sf, torch
sys.path.insert(0, sys.argv[3])
from helpers import CORPUS
from speech_helpers import spoken_utterances
from llmsrt.testing import build_tiny_model_and_processor
from transformers import pipeline
torch.set_num_threads(1)
path, minutes = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(0)
utterances = spoken_utterances(16, seed=0)  # speech the speech detector (Silero VAD) recognises
with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as out:
    written = 0
    while written < minutes * 60 * 16000:
        pause = np.zeros(int(rng.uniform(0.6, 1.5) * 16000), dtype=np.float32)
        for piece in (pause, utterances[int(rng.integers(16))]):
            out.write(piece)
            written += piece.size
model, processor = build_tiny_model_and_processor(CORPUS)
translator = pipeline("speech-translation", model=model.eval(), processor=processor)
translator(utterances[0], src_lang="eng", tgt_lang="deu", generate_kwargs={"max_new_tokens": 2, "num_beams": 1})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_now = int(open("/proc/self/statm").read().split()[1]) * 4  # KiB
started = time.time()
result = translator(path, src_lang="eng", tgt_lang="deu", return_timestamps=True, batch_size=8,
                    generate_kwargs={"max_new_tokens": 2, "num_beams": 1, "do_sample": False})
seconds = time.time() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"minutes": minutes, "segments": len(result["chunks"]), "seconds": round(seconds, 1),
                  "rss_before_mib": round(rss_now / 1024, 1), "peak_rss_mib": round(peak / 1024, 1),
                  "added_mib": round((peak - max(before, rss_now)) / 1024, 1),
                  "file_mib": round(written * 2 / 2**20, 1)}))
"""


def main():
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for minutes in (10, 60):
            path = Path(folder) / f"talk-{minutes}.wav"
            output = subprocess.run([sys.executable, "-c", CHILD, str(path), str(minutes), str(ROOT / "tests")],
                                    capture_output=True, text=True, cwd=ROOT, check=True)
            rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
            path.unlink()
            print(rows[-1])
    ratio = rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"peak RSS 60 min / 10 min: {ratio:.2f}x (audio 6x longer)")
    out = ROOT / "benchmarks" / "results" / "long-audio-memory.json"
    out.write_text(json.dumps({"rows": rows, "peak_ratio_60_over_10": round(ratio, 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
