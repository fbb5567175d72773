"""Dependencies run one way: model <- data <- training, evaluation <- demo. A lower layer never imports a higher
one, not even lazily inside a function (grimp reads every import statement of every module)."""

import grimp
import pytest

import llmsrt

# Packages above the model layer, lowest first. Every other llmsrt module is the model layer, 0: the package root
# (the remote-code files: model, processor, pipeline, languages, audio, language ID), llmsrt.lora (LoRA on the LLM)
# and llmsrt.diagnostics (the audio gain), shared by training, evaluation and the hub, llmsrt.testing (tiny random
# models), and llmsrt.conversion (the CTranslate2 converter). docs/architecture.md describes the layers.
LAYERS = {
    "llmsrt.data": 1,
    "llmsrt.inference": 1,  # subtitles CLI, web app, CPU quantization (evaluation scores quantized models)
    "llmsrt.training": 2,
    "llmsrt.evaluation": 2,
    "llmsrt.hub": 2,  # export and model cards: used by training, reads evaluation's report tables
    "llmsrt.conversion.convert_llm_srt_checkpoint": 2,  # writes a model card (llmsrt.hub)
    "llmsrt.demo": 3,
    "llmsrt.serving": 3,  # vLLM: the model plugin, and offline batches scored by evaluation's report
    "llmsrt.commands": 4,  # the console scripts: may import every tool
}
SIBLINGS = ("llmsrt.training", "llmsrt.evaluation")  # same layer, independent of each other


def layer_of(module: str) -> int:
    prefixes = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    return LAYERS[max(prefixes, key=len)] if prefixes else 0


def _package(module: str) -> str | None:
    return next((p for p in SIBLINGS if module == p or module.startswith(p + ".")), None)


def violations(graph) -> list[str]:
    """Every import of a higher layer by a lower one, and between training and evaluation, with its line."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not imported.startswith("llmsrt"):
                continue
            upward = layer_of(imported) > layer_of(importer)
            across = {_package(importer), _package(imported)} == set(SIBLINGS)
            if upward or across:
                lines = [d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)]
                found.append(f"{importer} imports {imported} (line {lines})")
    return found


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("llmsrt", cache_dir=None)


def test_the_graph_is_read_from_this_checkout(graph):
    assert "llmsrt.data.stage_data" in graph.modules and llmsrt.__file__.endswith("llmsrt/__init__.py")


def test_dependencies_run_one_way(graph):
    assert violations(graph) == []


BELOW_THE_DEMO = ("llmsrt.data", *SIBLINGS, "llmsrt.conversion")
DEMO_PARTS = ("corpus", "templates", "speech_synthesis", "offline_models")  # what only the demo uses


def test_data_training_and_evaluation_do_not_import_the_demo(graph):
    """Not directly, not lazily, not through another module."""
    for package in BELOW_THE_DEMO:
        chains = graph.find_shortest_chains(importer=package, imported="llmsrt.demo", as_packages=True)
        assert chains == set(), (package, chains)


def test_the_demo_owns_its_corpus_synthesis_and_model_mirrors(graph):
    assert {f"llmsrt.demo.{name}" for name in DEMO_PARTS} <= graph.modules
    below = [module for module in graph.modules if module.startswith(tuple(p + "." for p in BELOW_THE_DEMO))]
    # where they lived before: llmsrt.data.demo_corpus, .demo_templates, .speech_synthesis, llmsrt.conversion.offline
    strays = [module for module in below if "demo" in module or module.endswith((".speech_synthesis", ".offline"))]
    assert strays == [], strays


def test_the_check_reports_an_upward_import():
    """The check itself: a lazy import of the demo from training, and evaluation reaching into training, fail."""
    graph = grimp.ImportGraph()
    for module in ("llmsrt", "llmsrt.training.stage_data", "llmsrt.demo", "llmsrt.evaluation.evaluator",
                   "llmsrt.data.collator", "llmsrt.processing_llmsrt"):
        graph.add_module(module)
    graph.add_import(importer="llmsrt.training.stage_data", imported="llmsrt.demo", line_number=47,
                     line_contents="from ..demo import build_demo_corpus")
    graph.add_import(importer="llmsrt.evaluation.evaluator", imported="llmsrt.training.stage_data", line_number=68,
                     line_contents="from ..training.stage_data import load_stage_examples")
    graph.add_import(importer="llmsrt.data.collator", imported="llmsrt.processing_llmsrt", line_number=8,
                     line_contents="from ..processing_llmsrt import TASKS")
    assert violations(graph) == [
        "llmsrt.evaluation.evaluator imports llmsrt.training.stage_data (line [68])",
        "llmsrt.training.stage_data imports llmsrt.demo (line [47])",
    ]
