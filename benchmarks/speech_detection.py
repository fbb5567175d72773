"""Speech detection: Silero VAD (the default) against the energy rule it replaced, on where cues begin and end and on
what becomes text when there is no speech.

    python benchmarks/speech_detection.py [--threads 1] [--output benchmarks/results/speech-detection.json]

(1) Cue edges: two long-form recordings as tests/test_long_audio.py builds them, eSpeak NG sentences in 4 voices
separated by 0.8-1.6 s pauses (95 s): clean, and with white noise at -35 dBFS under the whole recording (a fan or a
room). For each detector: segments found against the true sentences, sentences missed, segments without a
sentence, and the mean and largest distance between a matched segment's edges and the sentence's.
(2) Text without speech: the pipeline (a tiny model taught to answer every clip, so that every segment it is given
becomes text) on 40 s of white noise at three levels, music (chords), mains hum, clicks, a 0.05-s noise burst and
digital silence: how many clips/segments became text.
Also the detectors' speed (seconds of compute per second of audio). Prints a table; names the CPU.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' recording builders and tiny answering model

RATE = 16000


def talk(noise_dbfs: float | None, seed: int = 0):
    from speech_helpers import spoken_talk

    rng = np.random.default_rng(seed)
    waveform, spans = spoken_talk(seed)
    if noise_dbfs is not None:
        waveform = waveform + 10 ** (noise_dbfs / 20) * rng.standard_normal(waveform.size).astype(np.float32)
    return waveform.astype(np.float32), spans


def cue_edges(segments, spans) -> dict:
    """Match each true sentence to the segment that overlaps it most."""
    errors, matched = [], set()
    missed = 0
    for start, end in spans:
        overlaps = [(min(end, s.end) - max(start, s.start), i) for i, s in enumerate(segments)]
        best = max(overlaps, default=(0, None))
        if best[0] <= 0:
            missed += 1
            continue
        matched.add(best[1])
        errors += [abs(segments[best[1]].start - start), abs(segments[best[1]].end - end)]
    return {"sentences": len(spans), "segments": len(segments), "missed": missed,
            "segments_without_a_sentence": len(segments) - len(matched),
            "edge_error_mean_s": round(float(np.mean(errors)), 3) if errors else None,
            "edge_error_max_s": round(float(np.max(errors)), 3) if errors else None}


def non_speech_sounds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(40 * RATE) / RATE
    chords = sum(0.08 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * 0.25 * k * t) > 0)
                 for k, f in enumerate([262, 330, 392, 523, 659], 1))
    clicks = np.zeros(t.size)
    clicks[:: RATE // 3] = 0.8
    burst = np.zeros(2 * RATE)
    burst[RATE : RATE + int(0.05 * RATE)] = 0.5 * rng.standard_normal(int(0.05 * RATE))
    sounds = {f"white noise {db} dBFS": 10 ** (db / 20) * rng.standard_normal(t.size) for db in (-40, -25, -15)}
    sounds |= {"music (chords)": chords, "hum 50 Hz + harmonics": 0.2 * np.sin(2 * np.pi * 50 * t)
               + 0.1 * np.sin(2 * np.pi * 150 * t), "clicks": clicks, "0.05-s noise burst": burst,
               "digital silence": np.zeros(t.size)}
    return {name: sound.astype(np.float32) for name, sound in sounds.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from speech_helpers import GREEDY, tiny_model_that_answers
    from transformers import pipeline

    from llmsrt.inference.quantization import describe_cpu
    from llmsrt.segmentation import LongFormOptions, split_on_pauses

    detectors = ("silero", "energy")
    results = {"cpu": describe_cpu(), "threads": args.threads, "cue_edges": {}, "text_without_speech": {},
               "compute_per_audio_second": {}}
    for label, noise in (("clean", None), ("noise -35 dBFS", -35.0)):
        waveform, spans = talk(noise)
        for detector in detectors:
            started = time.perf_counter()
            segments = list(split_on_pauses([waveform], RATE, 30.0, LongFormOptions(detector=detector)))
            elapsed = time.perf_counter() - started
            results["cue_edges"][f"{label} / {detector}"] = cue_edges(segments, spans)
            results["compute_per_audio_second"].setdefault(detector, []).append(elapsed / (waveform.size / RATE))
    model, processor = tiny_model_that_answers()
    translator = pipeline("speech-translation", model=model, processor=processor)
    for name, sound in non_speech_sounds().items():
        row = {}
        for detector in detectors:
            result = translator({"array": sound, "sampling_rate": RATE}, src_lang="eng", tgt_lang="deu",
                                return_timestamps=True, segmentation={"detector": detector}, generate_kwargs=GREEDY)
            row[detector] = {"segments_with_text": sum(bool(c["translation"]) for c in result["chunks"]),
                             "text": result["translation"][:60]}
        results["text_without_speech"][name] = row
    results["compute_per_audio_second"] = {k: round(float(np.mean(v)), 4)
                                           for k, v in results["compute_per_audio_second"].items()}

    print(f"CPU: {results['cpu']}, {args.threads} thread(s)")
    print("\nCue edges (95-s talk, eSpeak sentences after 0.8-1.6 s pauses)")
    print("| recording / detector | sentences | segments | missed | extra | edge error mean / max (s) |")
    print("|---|---|---|---|---|---|")
    for key, row in results["cue_edges"].items():
        print(f"| {key} | {row['sentences']} | {row['segments']} | {row['missed']} | "
              f"{row['segments_without_a_sentence']} | {row['edge_error_mean_s']} / {row['edge_error_max_s']} |")
    print("\nText produced without speech (segments that became text; 40 s clips, the burst 2 s)")
    print("| sound | silero | energy |")
    print("|---|---|---|")
    for name, row in results["text_without_speech"].items():
        print(f"| {name} | {row['silero']['segments_with_text']} | {row['energy']['segments_with_text']} |")
    print("\nCompute per second of audio:", results["compute_per_audio_second"])
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
