"""Read and write CTranslate2's `model.bin` (the format of faster-whisper checkpoints), without ctranslate2.

Layout: uint32 version; string spec name; uint32 revision; uint32 variable count; per variable: string name,
uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count, raw bytes; then uint32 alias count and
(alias, target) string pairs. A string is a uint16 length (including the final NUL), its bytes and the NUL.
"""

import struct
from pathlib import Path

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BFLOAT16 = 5
DTYPE_CODES = {np.dtype(dtype): code for code, dtype in DTYPES.items()}


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.offset = data, 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ValueError("Truncated CTranslate2 model.bin: the file ends inside a variable.")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        return self.take(length)[:-1].decode("utf-8")


def read_model_bin(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Returns (spec name, {variable name: array}); aliases become extra names for the same array.

    bfloat16 variables are widened to float32 (numpy has no bfloat16).
    """
    reader = _Reader(Path(path).read_bytes())
    version = reader.unpack("I")
    if version < 5:
        raise ValueError(f"CTranslate2 model.bin version {version} is too old; version 5 or newer is read.")
    spec = reader.string()
    reader.unpack("I")  # spec revision
    variables = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        rank = reader.unpack("B")
        shape = tuple(reader.unpack("I") for _ in range(rank))
        code = reader.unpack("B")
        raw = reader.take(reader.unpack("I"))
        if code == BFLOAT16:
            widened = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = widened.view(np.float32)
        elif code in DTYPES:
            array = np.frombuffer(raw, dtype=DTYPES[code])
        else:
            raise ValueError(f"Variable {name!r} has an unknown CTranslate2 dtype code {code}.")
        variables[name] = array.reshape(shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return spec, variables


def _string(text: str) -> bytes:
    encoded = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(encoded)) + encoded


def write_model_bin(path: str | Path, spec: str, variables: dict[str, np.ndarray],
                    aliases: dict[str, str] | None = None, version: int = 6) -> None:
    """Write variables (float32, float16, int8/16/32 arrays) in the same layout."""
    parts = [struct.pack("<I", version), _string(spec), struct.pack("<I", 1), struct.pack("<I", len(variables))]
    for name, array in variables.items():
        array = np.require(array, requirements="C")  # (ascontiguousarray would make scalars 1-D)
        parts += [_string(name), struct.pack("<B", array.ndim)]
        parts += [struct.pack("<I", dim) for dim in array.shape]
        parts += [struct.pack("<B", DTYPE_CODES[array.dtype]), struct.pack("<I", array.nbytes), array.tobytes()]
    aliases = aliases or {}
    parts.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        parts += [_string(alias), _string(target)]
    Path(path).write_bytes(b"".join(parts))
