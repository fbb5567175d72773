"""On-disk cache of the frozen Whisper encoder's outputs, shared by epochs, stages and processes.

The encoder never trains, so its output for a clip never changes: compute it once and read it back afterwards.
An entry is keyed by the clip's log-mel features (which fix the encoder input exactly) and by a fingerprint of
the encoder's weights, so a different encoder never reads another's entries. Entries are written to a temporary
name and renamed into place: processes may share one cache folder, and a killed writer leaves no partial entry.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def fingerprint(module: torch.nn.Module) -> str:
    """A hash of every weight (names and values): equal fingerprints mean identical modules."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class EncoderCache:
    """`encode(run_encoder, features, mask) -> (B, T_enc, D)` with cached real frames; padded frames come back
    as 0 (the Q-Former masks them), or are cached too with `keep_padding=True` (a Q-Former that reads them).

    `variant` names how the encoder is run (`"window"`: the 30-s window; `"variable-length"`: the clip's own
    length): the two give different frames, so each has its own entries.
    """

    def __init__(self, directory: str | os.PathLike, encoder: torch.nn.Module, variant: str = "window"):
        self.directory = Path(directory) / f"{fingerprint(encoder)[:16]}-{variant}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def _path(self, features: torch.Tensor, mel_frames: int) -> Path:
        digest = hashlib.sha256(features[:, :mel_frames].float().cpu().contiguous().numpy().tobytes()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.safetensors"

    def _load(self, path: Path) -> torch.Tensor | None:
        return load_file(path)["frames"] if path.is_file() else None

    def _store(self, path: Path, frames: torch.Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        save_file({"frames": frames.detach().cpu().contiguous()}, temporary)
        os.replace(temporary, path)

    def encode(
        self, run_encoder, input_features: torch.Tensor, input_features_mask: torch.Tensor, keep_padding: bool = False
    ) -> torch.Tensor:
        """`run_encoder(features, mask) -> (b, T_enc, D)` encodes the clips missing from the cache; with
        `keep_padding`, every frame of the window is cached and returned (an on-disk cache then needs a variant of
        its own, as `LLMSRTForConditionalGeneration.disk_encoder_cache` gives it)."""
        mel_lengths = input_features_mask.sum(-1).tolist()
        if keep_padding:
            mel_lengths = [input_features.shape[-1]] * len(mel_lengths)
        frame_lengths = [(length + 1) // 2 for length in mel_lengths]
        paths = [self._path(features, length) for features, length in zip(input_features, mel_lengths)]
        cached = {i: frames for i, frames in enumerate(map(self._load, paths)) if frames is not None}
        missing = [i for i in range(len(paths)) if i not in cached]
        self.hits += len(cached)
        self.misses += len(missing)
        if missing:
            encoded = run_encoder(input_features[missing], input_features_mask[missing])
            for row, i in enumerate(missing):
                cached[i] = encoded[row, : frame_lengths[i]]
                self._store(paths[i], cached[i])
        width = next(iter(cached.values())).shape[-1]
        total = input_features.shape[-1] // 2
        out = torch.zeros(len(paths), total, width, dtype=cached[0].dtype, device=input_features.device)
        for i, frames in cached.items():
            out[i, : frames.shape[0]] = frames.to(out.device)
        return out


class MemoryEncoderCache(EncoderCache):
    """The same cache in memory, for one model and one call: the pipeline keeps the frames that the language-ID head
    read until generation reads them (then drops them), so that `src_lang="auto"` encodes each clip once."""

    def __init__(self):
        self.directory = Path("memory")
        self.entries: dict[Path, torch.Tensor] = {}
        self.hits = self.misses = 0

    def _load(self, path: Path) -> torch.Tensor | None:
        return self.entries.pop(path, None)

    def _store(self, path: Path, frames: torch.Tensor) -> None:
        self.entries[path] = frames.detach()
