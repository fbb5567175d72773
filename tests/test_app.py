"""The web demo in a real headless browser: Debian's Chromium driven by Playwright, against a tiny model.

Skips (with the reason) only where the `[app]` extra (gradio, playwright) or the Chromium package is missing:
`make setup` installs both on Debian. `LLMSRT_APP_SCREENSHOT=docs/app.png` saves a screenshot of the page.
"""

import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
from helpers import SAMPLING_RATE, free_port
from speech_helpers import ANSWER, GREEDY, recording_with_pauses, spoken, spoken_utterances, tiny_model_that_answers

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a test
gradio = pytest.importorskip("gradio", reason="the web demo needs the [app] extra: pip install -e '.[app]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright ([app] extra)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")



@pytest.fixture(scope="module")
def served_app(one_thread):
    from transformers import pipeline

    from llmsrt.inference.app import build_app

    model, processor = tiny_model_that_answers()
    page = build_app(pipeline("speech-translation", model=model, processor=processor), GREEDY)
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    page.close()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: on Debian, `apt-get install chromium` (make setup does)")
def test_upload_a_wav_and_see_the_translation(served_app, tmp_path):
    waveform, _ = recording_with_pauses(spoken_utterances(2, seed=5), [0.5, 1.0])
    wav = tmp_path / "talk.wav"
    sf.write(wav, waveform, SAMPLING_RATE)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(served_app, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_selector("#translate", timeout=60_000)
            page.set_input_files("#audio input[type=file]", str(wav))
            page.wait_for_selector("#audio audio, #audio .waveform-container, #audio button", timeout=30_000)
            page.click("#translate")
            translation = page.locator("#translation textarea")
            sync_api.expect(translation).to_have_value(f"{ANSWER['translation']} {ANSWER['translation']}",
                                                       timeout=60_000)
            expected_transcript = f"{ANSWER['transcription']} {ANSWER['transcription']}"
            assert page.locator("#transcript textarea").input_value() == expected_transcript
            # One table row per segment, and the .srt downloads are offered.
            sync_api.expect(page.locator("#segments")).to_contain_text(ANSWER["translation"])
            sync_api.expect(page.locator("#srt")).to_contain_text(".srt")
            if os.environ.get("LLMSRT_APP_SCREENSHOT"):
                page.screenshot(path=os.environ["LLMSRT_APP_SCREENSHOT"], full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: on Debian, `apt-get install chromium` (make setup does)")
def test_live_captions_from_a_fake_microphone(served_app, tmp_path):
    """Chromium's fake microphone plays a WAV of two spoken sentences (looped): the live captions show the model's
    answer while the audio plays, and each committed caption is the answer for one sentence."""
    waveform, _ = recording_with_pauses(spoken_utterances(2), [0.5, 1.0], tail=1.5)
    wav = tmp_path / "talk.wav"
    sf.write(wav, waveform, SAMPLING_RATE, subtype="PCM_16")
    fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       f"--use-file-for-fake-audio-capture={wav}"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", *fake_microphone])
        try:
            context = browser.new_context(permissions=["microphone"], viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.goto(served_app, wait_until="domcontentloaded", timeout=60_000)
            page.get_by_role("tab", name="Live (microphone)").click()
            page.locator("#microphone").get_by_role("button", name="Record").click()
            live_translation = page.locator("#live-translation textarea")
            sync_api.expect(live_translation).to_have_value(re.compile(ANSWER["translation"]), timeout=90_000)
            stop = page.locator("#microphone").get_by_role("button", name="Stop")
            assert stop.is_visible()  # the captions came while the microphone was still recording
            rows = page.locator("#live-segments [role=row][data-index]")  # the table's body rows
            sync_api.expect(rows.nth(1)).to_contain_text(ANSWER["translation"], timeout=120_000)  # both sentences
            stop.click()
            committed = [rows.nth(index).inner_text() for index in range(rows.count())]
            assert len(committed) >= 2 and all(ANSWER["transcription"] in row and ANSWER["translation"] in row
                                               for row in committed), committed
            if os.environ.get("LLMSRT_APP_SCREENSHOT"):
                page.screenshot(path=os.environ["LLMSRT_APP_SCREENSHOT"].replace(".png", "-live.png"), full_page=True)
        finally:
            browser.close()


def test_live_captions_show_the_committed_captions_then_the_hypothesis(one_thread):
    """The microphone tab's session without a browser: 48-kHz stereo int16 chunks as Gradio streams them."""
    from llmsrt.inference.app import LiveCaptions

    model, processor = tiny_model_that_answers()
    from transformers import pipeline

    captions = LiveCaptions(pipeline("speech-translation", model=model, processor=processor), "eng", "deu", GREEDY,
                            chunk_seconds=0.5)
    sentence = spoken("Good morning, how are you today?", sampling_rate=48000)
    waveform = np.concatenate([sentence, np.zeros(48000, dtype=np.float32), sentence[: sentence.size // 2]])
    pcm = (np.stack([waveform, waveform], axis=1) * 32767).astype(np.int16)
    for begin in range(0, pcm.shape[0], 24000):
        captions.push(48000, pcm[begin:begin + 24000])
    assert len(captions.finals) == 1 and captions.partial is not None  # the second sentence is still open
    assert captions.texts() == (f"{ANSWER['transcription']} {captions.partial.transcription}".strip(),
                                f"{ANSWER['translation']} {captions.partial.translation}".strip())
    captions.finish()
    assert captions.partial is None and len(captions.rows()) == 2
    assert captions.texts() == (f"{ANSWER['transcription']} {ANSWER['transcription']}",
                                f"{ANSWER['translation']} {ANSWER['translation']}")
