import gc

import numpy as np
import pytest

from llmsrt.demo.speech_synthesis import ESpeak


@pytest.fixture(scope="module")
def espeak():
    return ESpeak()


def test_synthesis_speaks_at_16khz_with_voice_rate_and_pitch(espeak):
    text = "The train to the airport leaves at nine in the morning."
    normal = espeak.synthesize(text, "en-us", rate=175, pitch=50)
    slow = espeak.synthesize(text, "en-us", rate=110, pitch=50)
    high = espeak.synthesize(text, "en-us", rate=175, pitch=90)
    assert normal.dtype == np.float32 and 1.5 < normal.size / 16000 < 6
    assert np.abs(normal).max() > 0.05
    assert slow.size > 1.3 * normal.size  # slower speech lasts longer
    assert not np.array_equal(high[: normal.size], normal[: high.size])  # pitch changes the signal
    other_voice = espeak.synthesize(text, "en-us+f2", rate=175, pitch=50)
    assert not np.array_equal(other_voice[:16000], normal[:16000])
    german = espeak.synthesize("Der Zug fährt um neun Uhr ab.", "de")
    pinyin = espeak.synthesize("wo3 xi3 huan1 he1 cha2", "cmn-latn-pinyin")
    assert german.size > 8000 and pinyin.size > 8000


def test_unknown_voice_is_a_value_error(espeak):
    with pytest.raises(ValueError, match="no voice 'klingon'"):
        espeak.synthesize("hello", "klingon")
    with pytest.raises(ValueError, match="no voice 'en-us\\+zz9'"):
        espeak.synthesize("hello", "en-us+zz9")



def test_every_engine_is_the_process_engine(espeak):
    """The library has one global synthesis callback: a second engine, once collected, left it calling freed memory
    (a segmentation fault in the next synthesis)."""
    other = ESpeak()
    assert other is espeak
    del other
    gc.collect()
    assert espeak.synthesize("Good morning.", "en-us").size > 8000
