from __future__ import annotations

import numpy as np
import pytest

from bridge.sip.offer_answer import G722, PCMA, PCMU, Codec
from bridge.sip.rtp_codec import make_decoder, make_encoder, payload_ticks
from media.frames import Pcm16


def tone(hz: float, frames: int, rate: int = 16_000, amplitude: float = 8000) -> list[Pcm16]:
    n = rate * 20 // 1000
    t = np.arange(frames * n) / rate
    signal = (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return [signal[i * n : (i + 1) * n] for i in range(frames)]


def peak_hz(samples: Pcm16, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


@pytest.mark.parametrize("codec", [PCMU, PCMA, G722], ids=lambda c: c.name)
def test_a_tone_survives_encoding_and_decoding(codec: Codec) -> None:
    encoder, decoder = make_encoder(codec), make_decoder(codec)
    out = []
    for frame in tone(1000, 50):
        payload = encoder.encode(frame)
        # 20 ms is 160 bytes and 160 RTP clock ticks for all three.
        assert len(payload) == 160 and payload_ticks(payload) == 160
        decoded = decoder.decode(payload)
        assert decoded.size == codec.sample_rate // 50
        wide = decoder.to_pipeline(decoded)
        assert wide.size == 320 and wide.dtype == np.int16
        out.append(wide)
    heard = np.concatenate(out[10:])
    assert peak_hz(heard, 16_000) == pytest.approx(1000, abs=30)
    rms = float(np.sqrt(np.mean(heard.astype(np.float64) ** 2)))
    assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.1)


def test_g722_keeps_what_narrowband_loses() -> None:
    heard = {}
    for codec in (PCMU, G722):
        encoder, decoder = make_encoder(codec), make_decoder(codec)
        frames = [decoder.to_pipeline(decoder.decode(encoder.encode(f))) for f in tone(6000, 30)]
        heard[codec.name] = float(np.sqrt(np.mean(np.concatenate(frames[5:]).astype(float) ** 2)))
    assert heard["G722"] > 3000
    assert heard["PCMU"] < 300


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda c: c.name)
def test_digital_silence_stays_digital_silence(codec: Codec) -> None:
    encoder, decoder = make_encoder(codec), make_decoder(codec)
    silence = np.zeros(320, dtype=np.int16)
    payloads = [encoder.encode(silence) for _ in range(5)]
    assert len(set(payloads[1:])) == 1
    frames = [decoder.to_pipeline(decoder.decode(p)) for p in payloads]
    # The constant a G.711 silence code decodes to (0 for µ-law, ±8 for A-law) comes back
    # exactly, not with the resampler's ±1 of rounding noise.
    for frame in frames[2:]:
        assert len(set(frame.tolist())) == 1


def test_sound_after_silence_goes_through_the_resampler_again() -> None:
    encoder, decoder = make_encoder(PCMU), make_decoder(PCMU)
    silence = np.zeros(320, dtype=np.int16)
    for _ in range(5):
        decoder.to_pipeline(decoder.decode(encoder.encode(silence)))
    frames = [decoder.to_pipeline(decoder.decode(encoder.encode(f))) for f in tone(500, 10)]
    assert peak_hz(np.concatenate(frames[2:]), 16_000) == pytest.approx(500, abs=30)


def test_restart_forgets_the_decoder_state() -> None:
    for codec in (PCMA, G722):
        encoder, decoder = make_encoder(codec), make_decoder(codec)
        payload = encoder.encode(tone(800, 1)[0])
        first = decoder.to_pipeline(decoder.decode(payload))
        decoder.restart()
        assert np.array_equal(decoder.to_pipeline(decoder.decode(payload)), first)


def test_other_codecs_are_refused() -> None:
    opus = Codec("opus", 48_000, 48_000, 111)
    with pytest.raises(ValueError):
        make_encoder(opus)
    with pytest.raises(ValueError):
        make_decoder(opus)
