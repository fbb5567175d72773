"""Lever check: is the align head's dev accuracy held down by unseen voices or by unseen sentences?

Writes a corpus folder whose `dev.jsonl` speaks the demo corpus' dev sentences in the *training* styles (the style a
training clip of that sentence and language would get) and whose `train.jsonl` is the corpus' own, with absolute
audio paths. Score it with `align_generalization.py --corpus OUT`: if dev accuracy rises to the training clips'
level, the voices were the gap; if it stays, the sentences are.

    python benchmarks/dev_in_training_voices.py .cache/demo-corpus /tmp/dev-in-training-voices
    python benchmarks/align_generalization.py runs/demo-long/curriculum/align \
        runs/demo-long/curriculum/checkpoints/align/checkpoint-4000 --corpus /tmp/dev-in-training-voices
"""

import argparse
import json
from pathlib import Path

from llmsrt.data.demo_corpus import SPOKEN_COLUMN, TRAIN_STYLES, VOICES, _speak, read_sentences, style_index
from llmsrt.data import write_manifest
from llmsrt.data.speech_synthesis import ESpeak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="a demo corpus folder (train.jsonl, dev.jsonl, audio/)")
    parser.add_argument("output")
    args = parser.parse_args()
    corpus, output = Path(args.corpus).resolve(), Path(args.output)
    sentences = {sentence["id"]: sentence for sentence in read_sentences()}
    engine, dev = ESpeak(), []
    for line in (corpus / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        sentence_id, source = row["id"].split("-")[0], row["src_lang"]
        variant, rate, pitch = TRAIN_STYLES[style_index(f"{sentence_id}:{source}", TRAIN_STYLES)]
        path = output / "audio" / f"{sentence_id}-{source}-{variant}-{rate}-{pitch}.wav"
        voice = f"{VOICES[source]}+{variant}"
        _speak(engine, path, sentences[sentence_id][SPOKEN_COLUMN.get(source, source)], voice, rate, pitch)
        dev.append({**row, "audio": str(path.resolve()), "voice": voice})
    write_manifest(output / "dev.jsonl", dev)
    train = [json.loads(line) for line in (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    write_manifest(output / "train.jsonl", [{**row, "audio": str(corpus / row["audio"])} for row in train])
    print(f"{len(dev)} dev clips in training styles, {len(train)} training rows -> {output}")


if __name__ == "__main__":
    main()
