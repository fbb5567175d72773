"""Data sources in one example schema, and the collator that turns examples into training batches."""

from .collator import AlignmentCollator, CurriculumCollator, mixed_task
from .hub import load_common_voice, load_covost2, load_fleurs
from .manifest import ManifestError, load_manifest, write_manifest
from .schema import COLUMNS, SAMPLING_RATE, standardize

__all__ = [
    "AlignmentCollator",
    "COLUMNS",
    "SAMPLING_RATE",
    "CurriculumCollator",
    "ManifestError",
    "load_common_voice",
    "load_covost2",
    "load_fleurs",
    "load_manifest",
    "write_manifest",
    "mixed_task",
    "standardize",
]
