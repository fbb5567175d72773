"""Data sources in one example schema, and the collator that turns examples into training batches."""

from .clips import check_clips, clip_waveform
from .collator import AlignmentCollator, CurriculumCollator, mixed_task
from .common_voice import load_common_voice
from .covost2 import load_covost2
from .fleurs import load_fleurs
from .loading_report import DataReport
from .manifest import ManifestError, load_manifest, write_manifest
from .schema import COLUMNS, SAMPLING_RATE, standardize

__all__ = [
    "COLUMNS",
    "SAMPLING_RATE",
    "AlignmentCollator",
    "CurriculumCollator",
    "DataReport",
    "ManifestError",
    "check_clips",
    "clip_waveform",
    "load_common_voice",
    "load_covost2",
    "load_fleurs",
    "load_manifest",
    "mixed_task",
    "standardize",
    "write_manifest",
]
