"""Live translation: quality and latency of the finals (OmniSTEval), real-time factor, per chunk size, with the
offline pipeline beside it.

    python benchmarks/live_latency.py --model DIR [--corpus .cache/demo-corpus]   # a trained folder (SRT stage)
    python benchmarks/live_latency.py --parts DIR            # no trained model: the demo's architecture from its parts
        [--sentences 12] [--chunks 0.5 1.0 2.0] [--without_drafts 1.0] [--quantize int8] [--max_new_tokens 60]
        [--max_real_time_factor 0.8|none]
        [--threads 2] [--output benchmarks/results/live-latency.json]

Inputs: the demo corpus's English test clips (`--corpus`: its voices, rates and pitches; else the same test sentences
spoken here by eSpeak NG), German references from `llmsrt/demo/sentences.tsv`: (a) each clip on its own (shortform);
(b) one long talk of the same clips separated by 0.8-1.6 s pauses (longform: OmniSTEval re-segments the finals to the
reference sentences with its SoftSegmenter). Each recording is fed to `LiveTranslator` as if it arrived in real time
(simulated, not slept: each push gives all the audio that has arrived when the previous push's work is done, at least
one chunk, as the CLI does; the computation-aware time of an event is when its push's work would have finished). Each
word of a final's translation gets the audio time of its emission (computation-unaware) and that time
(computation-aware); OmniSTEval (a maintained package: `pip install omnisteval`) computes BLEU, chrF, YAAL, AL and LAAL
from them. RTF = compute seconds (wall clock) / audio seconds, and CPU seconds (both threads summed) per audio second.
The offline pipeline's BLEU/chrF on the same inputs (same route through OmniSTEval, no latency) are beside. Every
decode is greedy with the same `--max_new_tokens`. Rows `live, no drafts` (`--without_drafts CHUNK ...`) decode
without the previous partial's answer as draft: the drafts' speed-up. A second table reports LocalAgreement-2 on the
partials: how many stable prefixes the final of their stretch kept, and how early the kept words were stable.

`--parts DIR` (a folder with `whisper-base/` and `qwen2.5-0.5b-instruct/`, as `llmsrt.demo.offline_models` assembles
them) builds the demo recipe's architecture with a **freshly initialised adapter**: its speed is a trained model's
(every decode is forced to generate as many tokens as a reference answer, as benchmarks/cpu_inference.py does), but
its texts are noise, so BLEU/chrF and the latencies (which depend on which words are emitted) mean nothing then; only
RTF does. Names the CPU and the load average.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RATE = 16000


def test_sentences(count: int, corpus: str | None = None) -> list[dict]:
    """The first `count` test sentences with English audio and German references: the demo corpus's own test clips
    (`corpus`: its voices, rates and pitches), or spoken here by eSpeak NG (en-us, 160-180 words per minute)."""
    from llmsrt.demo.corpus import read_sentences, split_of

    sentences = {row["id"]: row for row in read_sentences() if split_of(row["id"]) == "test"}
    if corpus:
        import soundfile

        clips = [json.loads(line) for line in (Path(corpus) / "test.jsonl").read_text().splitlines()]
        clips = [clip for clip in clips if clip["src_lang"] == "eng"][:count]
        rows = []
        for clip in clips:
            audio, rate = soundfile.read(Path(corpus) / clip["audio"], dtype="float32")
            assert rate == RATE and audio.ndim == 1, (clip["audio"], rate, audio.shape)
            rows.append({**sentences[clip["id"].split("-")[0]], "audio": audio})
        return rows
    from llmsrt.demo.speech_synthesis import ESpeak

    engine = ESpeak()
    rows = list(sentences.values())[:count]
    for index, row in enumerate(rows):
        row["audio"] = engine.synthesize(row["eng"], "en-us", rate=160 + 10 * (index % 3))
    return rows


def load(args):
    from transformers import pipeline

    import llmsrt  # noqa: F401

    if args.model:
        return pipeline("speech-translation", model=args.model, device="cpu", trust_remote_code=True), False
    from llmsrt.modeling_llmsrt import LLMSRTForConditionalGeneration
    from llmsrt.processing_llmsrt import LLMSRTProcessor

    whisper, llm = str(Path(args.parts) / "whisper-base"), str(Path(args.parts) / "qwen2.5-0.5b-instruct")
    processor = LLMSRTProcessor.from_pretrained_parts(whisper, llm, None, 32)
    model = LLMSRTForConditionalGeneration.from_pretrained_parts(
        whisper, llm, audio_token_id=processor.audio_token_id, num_query_tokens=32,
        qformer_config={"num_hidden_layers": 2}, variable_length_encoding=True, query_time_window=1)
    return pipeline("speech-translation", model=model.eval(), processor=processor), True


def answer_tokens(processor, rows) -> int:
    answers = [processor.prompt_builder.answer("srt", "eng", "deu", row["eng"], row["deu"]) for row in rows]
    lengths = [len(processor.tokenizer(answer)["input_ids"]) + 1 for answer in answers]
    return int(np.median(lengths))


def agreement_report(events: list) -> dict:
    """What committing the transcript by LocalAgreement-2 would have given, from the partials' stable prefixes:
    `stable_prefixes` (non-empty ones), `kept` (share of them that the final of their stretch begins with: a
    committed prefix that the final revises would be an error), `words_early` (the final's transcript words that a
    kept stable prefix held before the final) and `seconds_early` (their mean lead over the final, audio seconds)."""
    prefixes = kept = 0
    leads = []
    for index, final in enumerate(events):
        if final.type != "final":
            continue
        words = final.transcription.split()
        first_stable = {}
        for partial in events[:index]:
            if partial.type != "partial" or partial.start != final.start or not partial.stable_transcription:
                continue
            prefix = partial.stable_transcription.split()
            prefixes += 1
            if words[: len(prefix)] == prefix:
                kept += 1
                for position in range(len(prefix)):
                    first_stable.setdefault(position, partial.emitted_at)
        leads += [final.emitted_at - at for at in first_stable.values()]
    return {"stable_prefixes": prefixes, "kept": round(kept / prefixes, 3) if prefixes else None,
            "words_early": len(leads), "seconds_early": round(float(np.mean(leads)), 2) if leads else None}


def run_live(translator, waveform: np.ndarray, chunk_seconds: float, generate_kwargs: dict,
             drafts: bool = True, max_real_time_factor: float | None = 0.8) -> dict:
    """Feed `waveform` as if it arrived in real time: each push gives all the audio that has arrived by the time the
    previous push's work is done (at least one chunk), as the CLI's microphone and `--speed` playback do, so that
    a slow decode makes the next push larger instead of falling behind. Returns the finals with their CU and CA
    times, the compute, the number of pushes and partials, and the LocalAgreement-2 report of the partials."""
    from llmsrt.inference.live import LiveTranslator

    session = LiveTranslator(translator, "eng", "deu", chunk_seconds=chunk_seconds, generate_kwargs=generate_kwargs,
                             drafts=drafts, max_real_time_factor=max_real_time_factor)
    step = int(chunk_seconds * RATE)
    clock = compute = cpu = 0.0  # clock: simulated wall time, audio arriving at 1 s per s
    finals, pushes, partials, events = [], 0, 0, []

    def timed(call):
        nonlocal clock, compute, cpu, partials
        started, started_cpu = time.perf_counter(), time.process_time()
        new_events = call()
        spent = time.perf_counter() - started
        compute += spent
        cpu += time.process_time() - started_cpu
        clock += spent
        events.extend(new_events)
        partials += sum(event.type == "partial" for event in new_events)
        finals.extend((event, clock) for event in new_events if event.type == "final")

    position = 0
    while position < waveform.size:
        next_chunk = min(position + step, waveform.size)
        clock = max(clock, next_chunk / RATE)  # wait for the next chunk to arrive
        arrived = min(waveform.size, max(next_chunk, int(clock * RATE)))
        chunk, position = waveform[position:arrived], arrived
        pushes += 1
        timed(lambda chunk=chunk: session.push(chunk, RATE))
    timed(session.finish)
    words, delays, elapsed = [], [], []
    for event, done in finals:
        for word in event.translation.split():
            words.append(word)
            delays.append(round(event.emitted_at * 1000, 1))
            elapsed.append(round(done * 1000, 1))
    return {"prediction": " ".join(words), "delays": delays, "elapsed": elapsed, "compute": compute, "cpu": cpu,
            "pushes": pushes, "partials": partials, "source_length": round(waveform.size / RATE * 1000, 1),
            "agreement": agreement_report(events)}


def agreement_totals(reports: list[dict]) -> dict:
    """`agreement_report`s of several recordings, pooled."""
    prefixes = sum(report["stable_prefixes"] for report in reports)
    kept = sum(report["kept"] * report["stable_prefixes"] for report in reports if report["kept"] is not None)
    words = sum(report["words_early"] for report in reports)
    lead = sum(report["seconds_early"] * report["words_early"] for report in reports if report["words_early"])
    return {"stable_prefixes": prefixes, "kept": round(kept / prefixes, 3) if prefixes else None,
            "words_early": words, "seconds_early": round(lead / words, 2) if words else None}


# Shortform reports "AL (CU)", longform "LongAL (CU)": both are read as "AL (CU)".
SCORE = re.compile(r"^\s{2}(BLEU|chrF|(?:Long)?(?:YAAL|AL|LAAL) \(C[UA]\))\s{2,}(-?[\d.]+|nan)\s*$")


def omnisteval(arguments: list[str]) -> dict:
    command = [str(Path(sys.executable).with_name("omnisteval")), *arguments, "--word_level"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1][-200:]}
    scores = {}
    for line in result.stdout.splitlines():
        match = SCORE.match(line)
        if match:
            scores[match.group(1).removeprefix("Long")] = float(match.group(2))
    return scores


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="A trained LLM-SRT folder.")
    source.add_argument("--parts", help="A folder with whisper-base/ and qwen2.5-0.5b-instruct/ (fresh adapter).")
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--corpus", default=None,
                        help="The demo corpus (.cache/demo-corpus): its English test clips; default: eSpeak here.")
    parser.add_argument("--chunks", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--without_drafts", type=float, nargs="*", default=[1.0],
                        help="Chunk sizes also run without answer drafts (the decoding speed-up's measure).")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="int8: llmsrt.inference.quantization.quantize_for_cpu (the LLM's linear layers).")
    parser.add_argument("--max_new_tokens", type=int, default=60,
                        help="For every decode, live and offline (the test sentences last 1.5-4 s).")
    parser.add_argument("--max_real_time_factor", type=lambda text: None if text == "none" else float(text),
                        default=0.8, help="LiveTranslator's (default 0.8); none: a partial every chunk.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from llmsrt.inference.quantization import describe_cpu

    load_before = os.getloadavg()
    translator, fresh = load(args)
    if args.quantize == "int8":
        from llmsrt.inference.quantization import quantize_for_cpu

        quantize_for_cpu(translator.model, "int8")
    rows = test_sentences(args.sentences, args.corpus)
    generate_kwargs = {"num_beams": 1, "do_sample": False, "max_new_tokens": args.max_new_tokens}
    if fresh:  # a fresh adapter's texts are noise: make each decode the length of a real answer
        tokens = answer_tokens(translator.processor, rows)
        generate_kwargs |= {"min_new_tokens": tokens, "max_new_tokens": tokens}
    rng = np.random.default_rng(0)
    pieces, segmentation, position = [], [], 0.0
    for row in rows:
        pause = np.zeros(int(rng.uniform(0.8, 1.6) * RATE), dtype=np.float32)
        position += pause.size / RATE
        segmentation.append({"wav": "talk.wav", "offset": round(position, 3),
                             "duration": round(row["audio"].size / RATE, 3)})
        position += row["audio"].size / RATE
        pieces += [pause, row["audio"]]
    pieces.append(np.zeros(RATE, dtype=np.float32))
    talk = np.concatenate(pieces)
    work = Path(tempfile.mkdtemp(prefix="live-latency-"))
    references = work / "references.de.txt"
    references.write_text("".join(row["deu"] + "\n" for row in rows), encoding="utf-8")
    (work / "segmentation.json").write_text(json.dumps(segmentation))
    clip_seconds = sum(row["audio"].size for row in rows) / RATE
    talk_seconds = talk.size / RATE
    results = {"cpu": describe_cpu(), "threads": args.threads, "fresh_adapter": fresh, "sentences": len(rows),
               "clips": f"the demo corpus's English test clips ({args.corpus})" if args.corpus else "eSpeak en-us",
               "clip_audio_s": round(clip_seconds, 1), "talk_audio_s": round(talk_seconds, 1),
               "generate_kwargs": generate_kwargs, "quantize": args.quantize,
               "max_real_time_factor": args.max_real_time_factor, "rows": []}

    # The offline pipeline: each clip, and the talk cut at pauses.
    started, started_cpu = time.perf_counter(), time.process_time()
    offline_clips = [translator({"array": row["audio"], "sampling_rate": RATE}, src_lang="eng", tgt_lang="deu",
                                generate_kwargs=generate_kwargs)["translation"] or "" for row in rows]
    clips_compute, clips_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    started, started_cpu = time.perf_counter(), time.process_time()
    offline_talk = translator({"array": talk, "sampling_rate": RATE}, src_lang="eng", tgt_lang="deu",
                              return_timestamps=True, generate_kwargs=generate_kwargs)["translation"] or ""
    talk_compute, talk_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    shortform = write_jsonl(work / "offline-clips.jsonl", [
        {"source": f"clip{i}.wav", "prediction": text, "source_length": round(row["audio"].size / RATE * 1000, 1)}
        for i, (row, text) in enumerate(zip(rows, offline_clips))])
    (work / "offline-talk.txt").write_text(offline_talk + "\n", encoding="utf-8")
    results["rows"].append({
        "system": "offline pipeline", "chunk_s": None,
        "clips": omnisteval(["shortform", "--hypothesis_file", str(shortform), "--ref_sentences_file",
                             str(references), "--no_latency"]),
        "talk": omnisteval(["longform", "--speech_segmentation", str(work / "segmentation.json"),
                            "--ref_sentences_file", str(references), "--hypothesis_file",
                            str(work / "offline-talk.txt"), "--hypothesis_format", "text", "--lang", "de"]),
        "rtf_clips": round(clips_compute / clip_seconds, 3), "rtf_talk": round(talk_compute / talk_seconds, 3),
        "cpu_rtf_clips": round(clips_cpu / clip_seconds, 3), "cpu_rtf_talk": round(talk_cpu / talk_seconds, 3)})

    print(f"offline done (RTF clips {clips_compute / clip_seconds:.2f}, talk {talk_compute / talk_seconds:.2f})",
          file=sys.stderr, flush=True)
    for chunk, drafts in [(chunk, True) for chunk in args.chunks] + [(chunk, False) for chunk in args.without_drafts]:
        clip_runs = [run_live(translator, row["audio"], chunk, generate_kwargs, drafts, args.max_real_time_factor)
                     for row in rows]
        talk_run = run_live(translator, talk, chunk, generate_kwargs, drafts, args.max_real_time_factor)
        clip_file = write_jsonl(work / f"live-clips-{chunk}-{drafts}.jsonl", [
            {"source": f"clip{i}.wav", **{k: run[k] for k in ("prediction", "delays", "elapsed", "source_length")}}
            for i, run in enumerate(clip_runs)])
        talk_file = write_jsonl(work / f"live-talk-{chunk}-{drafts}.jsonl", [
            {"source": "talk.wav", **{k: talk_run[k] for k in ("prediction", "delays", "elapsed", "source_length")}}])
        results["rows"].append({
            "system": "live" if drafts else "live, no drafts", "chunk_s": chunk,
            "clips": omnisteval(["shortform", "--hypothesis_file", str(clip_file), "--ref_sentences_file",
                                 str(references)]),
            "talk": omnisteval(["longform", "--speech_segmentation", str(work / "segmentation.json"),
                                "--ref_sentences_file", str(references), "--hypothesis_file", str(talk_file),
                                "--lang", "de"]),
            "rtf_clips": round(sum(run["compute"] for run in clip_runs) / clip_seconds, 3),
            "rtf_talk": round(talk_run["compute"] / talk_seconds, 3),
            "cpu_rtf_clips": round(sum(run["cpu"] for run in clip_runs) / clip_seconds, 3),
            "cpu_rtf_talk": round(talk_run["cpu"] / talk_seconds, 3),
            "talk_pushes": talk_run["pushes"], "talk_partials": talk_run["partials"],
            "agreement_clips": agreement_totals([run["agreement"] for run in clip_runs]),
            "agreement_talk": talk_run["agreement"]})
        print(f"chunk {chunk} s done: {results['rows'][-1]}", file=sys.stderr, flush=True)
    results["load_average"] = {"before": [round(x, 2) for x in load_before],
                               "after": [round(x, 2) for x in os.getloadavg()]}

    print(f"CPU: {results['cpu']}; {args.threads} threads; load average before {results['load_average']['before']}, "
          f"after {results['load_average']['after']}; {len(rows)} test sentences ({clip_seconds:.1f} s), talk "
          f"{talk_seconds:.1f} s; fresh adapter: {fresh}; quantize: {args.quantize or 'none (fp32)'}; "
          f"max_real_time_factor: {args.max_real_time_factor}")
    keys = ["BLEU", "chrF", "LAAL (CU)", "AL (CU)", "YAAL (CU)", "LAAL (CA)", "AL (CA)", "YAAL (CA)"]
    print("| input | system | chunk (s) | " + " | ".join(keys) + " | RTF (wall) | CPU s per audio s |")
    print("|---|---|---|" + "---|" * (len(keys) + 2))
    for row in results["rows"]:
        for name in ("clips", "talk"):
            scores = row[name]
            cells = [f"{scores[k]:.1f}" if isinstance(scores.get(k), float) else "-" for k in keys]
            if "error" in scores:
                cells = [f"error: {scores['error'][:60]}"] + [""] * (len(keys) - 1)
            print(f"| {'(a) clips' if name == 'clips' else '(b) talk'} | {row['system']} | {row['chunk_s'] or '-'} | "
                  + " | ".join(cells) + f" | {row['rtf_' + name]} | {row['cpu_rtf_' + name]} |")
    print("\nLocalAgreement-2 on the partials (what committing by agreement would have given):")
    print("| input | chunk (s) | stable prefixes | kept by the final | words held early | mean lead (s) |")
    print("|---|---|---|---|---|---|")
    for row in results["rows"]:
        for name in ("clips", "talk") if row["system"] == "live" else ():
            report = row["agreement_" + name]
            print(f"| {'(a) clips' if name == 'clips' else '(b) talk'} | {row['chunk_s']} | "
                  f"{report['stable_prefixes']} | {report['kept']} | {report['words_early']} | "
                  f"{report['seconds_early']} |")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
