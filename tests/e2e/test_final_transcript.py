"""A final transcript over a real WebSocket is never worse than the partials before it.

espeak-ng saying "Hello, I need help with my order" over 16 kHz pcm16 once gave the partial
"Hello i need help with my order" and the final "Hello, I need help with mortar.": where the
utterance falls on the encoder's 384-sample grid decided it (see media/asr.py). The phrase is
spoken at several sub-frame offsets, each its own turn, so one of them lands on a bad grid."""

from __future__ import annotations

import numpy as np

from media.wer import words
from tests.e2e.conftest import Connect
from tests.e2e.test_voice_conversation import reply_audio
from tests.unit.media.recordings import espeak

PHRASE = "Hello, I need help with my order"


async def test_finals_of_a_synthesized_phrase_at_every_offset_are_right(
    converse: Connect,
) -> None:
    client, _created = await converse()
    _greeting, done = await reply_audio(client)
    speech = espeak(PHRASE)
    expected = words(PHRASE)
    for lead in range(0, 320, 64):
        await client.speak(np.concatenate((np.zeros(lead, np.int16), speech)))
        final = await client.wait_for("transcript.final", after=done, timeout=30)
        assert words(final.data["text"]) == expected, (lead, final.data["text"])
        _reply, done = await reply_audio(client, after=client.index(final))
