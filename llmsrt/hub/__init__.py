"""Model cards, export (LoRA merged + code + card) and Hub upload."""

from .card import render_model_card
from .export import export_model, load_for_export, push_folder

__all__ = ["export_model", "load_for_export", "push_folder", "render_model_card"]
