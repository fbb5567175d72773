"""The web demo in a real headless browser: Debian's Chromium driven by Playwright, against a tiny model.

Skips (with the reason) only where the `[app]` extra (gradio, playwright) or the Chromium package is missing:
`make setup` installs both on Debian. `LLMSRT_APP_SCREENSHOT=docs/app.png` saves a screenshot of the page.
"""

import os
import shutil
import socket

import pytest
import soundfile as sf
from helpers import SAMPLING_RATE
from speech_helpers import ANSWER, GREEDY, recording_with_pauses, spoken_utterances, tiny_model_that_answers

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a test
gradio = pytest.importorskip("gradio", reason="the web demo needs the [app] extra: pip install -e '.[app]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright ([app] extra)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
