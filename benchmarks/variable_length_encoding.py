"""Benchmark 2: variable-length encoding. The frozen Whisper encoder reads a clip's real length instead of 30 s of
padding: speed ratio, and the drift of the encoder output on the real frames, with real Whisper weights.

    python benchmarks/variable_length_encoding.py --whisper WHISPER_FOLDER_OR_ID clip1.wav clip2.wav ...

(A transformers Whisper folder, e.g. the output of llmsrt.conversion.convert_ctranslate2_whisper_to_hf.)
"""

import argparse
import statistics
import time

import librosa
import torch
from peak_memory import PeakMemory
from transformers import WhisperFeatureExtractor, WhisperModel

from llmsrt.modeling_llmsrt import LLMSRTWhisperEncoder


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("clips", nargs="+")
    args = parser.parse_args()
    whisper = WhisperModel.from_pretrained(args.whisper)
    encoder = LLMSRTWhisperEncoder(whisper.config)
    encoder.load_state_dict(whisper.get_encoder().state_dict())
    encoder.eval()
    extractor = WhisperFeatureExtractor.from_pretrained(args.whisper)
    full_times, short_times, drifts, cosines = [], [], [], []
    peaks = {"window": 0.0, "variable-length": 0.0}
    for path in args.clips:
        audio, _ = librosa.load(path, sr=16000)
        inputs = extractor(audio, sampling_rate=16000, return_attention_mask=True, return_tensors="pt")
        real = int(inputs["attention_mask"].sum()) + 2
        real += real % 2
        frames = (int(inputs["attention_mask"].sum()) + 1) // 2
        with torch.no_grad():
            for _ in range(args.repeats):
                with PeakMemory() as peak:
                    start = time.perf_counter()
                    full = encoder(inputs["input_features"]).last_hidden_state[0, :frames]
                    full_times.append(time.perf_counter() - start)
                peaks["window"] = max(peaks["window"], peak.gib)
                with PeakMemory() as peak:
                    start = time.perf_counter()
                    short = encoder(inputs["input_features"][..., :real]).last_hidden_state[0, :frames]
                    short_times.append(time.perf_counter() - start)
                peaks["variable-length"] = max(peaks["variable-length"], peak.gib)
        drifts.append(float((short - full).norm() / full.norm()))
        cosines.append(float(torch.nn.functional.cosine_similarity(short, full, dim=-1).mean()))
        print(f"{path}: {len(audio) / 16000:.1f} s, relative L2 drift {drifts[-1]:.3f}, "
              f"mean cosine {cosines[-1]:.3f}")
    ratio = statistics.median(full_times) / statistics.median(short_times)
    print(f"encoder speed-up on real length: {ratio:.1f}x (median over {len(full_times)} runs); "
          f"drift mean {statistics.mean(drifts):.3f}, cosine mean {statistics.mean(cosines):.3f}; peak memory added "
          f"{peaks['window'] * 1024:.0f} MiB (window) vs {peaks['variable-length'] * 1024:.0f} MiB (variable length)")


if __name__ == "__main__":
    main()
