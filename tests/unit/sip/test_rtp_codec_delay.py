from __future__ import annotations

import numpy as np
import pytest

from bridge.sip.offer_answer import PCMA, PCMU, Codec
from bridge.sip.rtp_codec import make_decoder, make_encoder
from media.frames import Pcm16


def _chirp(seconds: float = 1.0) -> Pcm16:
    """A tone gliding 300 Hz - 3 kHz: no period, so the lag that fits it is unique."""
    t = np.arange(int(16000 * seconds)) / 16000
    return (8000 * np.sin(2 * np.pi * (300 * t + 1350 * t**2))).astype(np.int16)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_narrowband_round_trip_lags_by_the_two_filter_delays(codec: Codec) -> None:
    encoder, decoder = make_encoder(codec), make_decoder(codec)
    sent = _chirp()
    received = np.concatenate(
        [
            decoder.to_pipeline(decoder.decode(encoder.encode(sent[i : i + 320])))
            for i in range(0, sent.size, 320)
        ]
    )
    assert received.size == sent.size
    lags = np.arange(0, 400)
    fit = [
        np.dot(sent[: sent.size - lag].astype(float), received[lag:].astype(float)) for lag in lags
    ]
    # 4.5 ms down to 8 kHz and 4.5 ms back up: 144 samples at 16 kHz, no look-ahead on top.
    assert int(lags[int(np.argmax(fit))]) == 144
