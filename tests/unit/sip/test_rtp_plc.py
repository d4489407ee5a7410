from __future__ import annotations

import numpy as np

from bridge.sip.rtp_plc import Concealer
from media.frames import Pcm16

RATE = 8000
FRAME = 160


def voiced(samples: int, start: int = 0, hz: float = 180.0) -> Pcm16:
    t = (start + np.arange(samples)) / RATE
    wave = np.sin(2 * np.pi * hz * t) + 0.4 * np.sin(2 * np.pi * 2 * hz * t)
    out: Pcm16 = (6000 * wave).astype(np.int16)
    return out


def test_a_short_loss_continues_the_sound_and_fades_out_by_60_ms() -> None:
    concealer = Concealer(RATE)
    for k in range(5):
        concealer.good(voiced(FRAME, k * FRAME))
    guess = concealer.conceal(FRAME)
    truth = voiced(FRAME, 5 * FRAME)
    correlation = np.corrcoef(guess[:80].astype(float), truth[:80].astype(float))[0, 1]
    assert correlation > 0.9
    assert concealer.concealing and not concealer.exhausted
    later = np.concatenate([concealer.conceal(FRAME) for _ in range(3)])
    assert np.abs(later[-FRAME:]).max() == 0
    assert concealer.exhausted
    assert np.abs(later[:40]).max() < np.abs(guess).max()


def test_recovery_is_cross_faded_without_a_click() -> None:
    concealer = Concealer(RATE)
    for k in range(5):
        concealer.good(voiced(FRAME, k * FRAME))
    guess = concealer.conceal(FRAME)
    # The real audio comes back in opposite phase: an unfaded splice would jump by ~2x peak.
    back = -voiced(FRAME, 6 * FRAME)
    out = concealer.good(back)
    assert not concealer.concealing
    assert abs(int(out[0]) - int(guess[-1])) < abs(int(back[0]) - int(guess[-1])) + 1
    assert np.array_equal(out[40:], back[40:])
    steps = np.abs(np.diff(np.concatenate((guess[-1:], out[:40])).astype(int)))
    assert steps.max() < 3000


def test_nothing_to_repeat_gives_silence() -> None:
    concealer = Concealer(RATE)
    assert not concealer.conceal(FRAME).any()
    concealer.good(np.zeros(FRAME, dtype=np.int16))
    concealer.good(np.zeros(FRAME, dtype=np.int16))
    assert not concealer.conceal(FRAME).any()
    concealer.reset()
    assert not concealer.concealing


def test_wideband_concealment_works_at_16_khz() -> None:
    concealer = Concealer(16_000)
    t = np.arange(320 * 6) / 16_000
    signal = (5000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    for k in range(5):
        concealer.good(signal[k * 320 : (k + 1) * 320])
    guess = concealer.conceal(320)
    correlation = np.corrcoef(guess[:160].astype(float), signal[1600:1760].astype(float))[0, 1]
    assert correlation > 0.9
