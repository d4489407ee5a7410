from __future__ import annotations

import random

import pytest

from bridge.sip.jitter import JitterBuffer, JitterConfig, Pull, Segment
from bridge.sip.rtp_packet import Unwrapper

TICKS = 160
FRAME = 0.02


def payload(n: int) -> bytes:
    return n.to_bytes(4, "big") * (TICKS // 4)


def played(segments: list[Segment]) -> list[int | str]:
    """Frame numbers handed out, and "gap:N" for N ticks to conceal."""
    return [int.from_bytes(s[:4], "big") if isinstance(s, bytes) else f"gap:{s}" for s in segments]


def pull(buffer: JitterBuffer, now: float, quiet: bool = True) -> Pull:
    result = buffer.pull(now, quiet)
    assert result is not None
    return result


def test_nothing_plays_before_the_first_packet_and_its_start_delay() -> None:
    buffer = JitterBuffer()
    assert buffer.pull(0.0, True) is None
    buffer.put(0, payload(0), TICKS, arrival=1.0)
    assert buffer.pull(1.02, True) is None
    assert played(pull(buffer, 1.04).segments) == [0]


def test_reordered_packets_play_in_timestamp_order() -> None:
    buffer = JitterBuffer()
    order = [0, 2, 1, 3, 5, 4, 6, 7]
    for i, n in enumerate(order):
        buffer.put(n * TICKS, payload(n), TICKS, arrival=i * FRAME)
    out: list[int | str] = []
    for k in range(8):
        out += played(pull(buffer, 0.2 + k * FRAME).segments)
    assert out == list(range(8))


def test_a_lost_packet_is_a_gap_of_its_duration() -> None:
    buffer = JitterBuffer()
    for n in (0, 1, 3, 4):
        buffer.put(n * TICKS, payload(n), TICKS, arrival=n * FRAME)
    out: list[int | str] = []
    for k in range(5):
        out += played(pull(buffer, 0.2 + k * FRAME).segments)
    assert out == [0, 1, f"gap:{TICKS}", 3, 4]


def test_duplicates_play_once_and_are_counted() -> None:
    buffer = JitterBuffer()
    buffer.put(0, payload(0), TICKS, arrival=0.0)
    buffer.put(0, payload(0), TICKS, arrival=0.001)
    buffer.put(TICKS, payload(1), TICKS, arrival=0.02)
    assert played(pull(buffer, 0.05).segments) == [0]
    buffer.put(0, payload(0), TICKS, arrival=0.051)
    assert played(pull(buffer, 0.07).segments) == [1]
    assert buffer.counters.duplicates == 2
    assert buffer.counters.late == 0


def test_a_late_packet_is_counted_and_the_buffer_grows_at_once() -> None:
    buffer = JitterBuffer(JitterConfig(start_delay_ms=20))
    for n in range(3):
        buffer.put(n * TICKS, payload(n), TICKS, arrival=n * FRAME)
    assert played(pull(buffer, 0.02).segments) == [0]
    assert played(pull(buffer, 0.04).segments) == [1]
    assert played(pull(buffer, 0.06).segments) == [2]
    assert played(pull(buffer, 0.08).segments) == [f"gap:{TICKS}"]
    buffer.put(3 * TICKS, payload(3), TICKS, arrival=0.09)
    assert buffer.counters.late == 1
    grow = pull(buffer, 0.10)
    assert grow.frames == 0 and grow.segments == []
    assert buffer.counters.grown == 1


def test_packets_longer_than_a_frame_are_handed_out_once() -> None:
    buffer = JitterBuffer()
    for n in range(4):
        buffer.put(n * 240, payload(n)[:240], 240, arrival=n * 0.03)
    out: list[int | str] = []
    for k in range(6):
        out += played(pull(buffer, 0.1 + k * FRAME).segments)
    assert out == [0, 1, 2, 3]


def test_timestamp_wraparound_through_an_unwrapper() -> None:
    buffer = JitterBuffer()
    stamps = Unwrapper(32)
    start = (1 << 32) - 3 * TICKS
    for n in range(8):
        wire = (start + n * TICKS) % (1 << 32)
        buffer.put(stamps.unwrap(wire), payload(n), TICKS, arrival=n * FRAME)
    out: list[int | str] = []
    for k in range(8):
        out += played(pull(buffer, 0.1 + k * FRAME).segments)
    assert out == list(range(8))


def test_a_jump_of_the_senders_timeline_restarts_the_buffer() -> None:
    buffer = JitterBuffer()
    for n in range(5):
        buffer.put(n * TICKS, payload(n), TICKS, arrival=n * FRAME)
    for k in range(3):
        pull(buffer, 0.1 + k * FRAME)
    # The sender restarted with a timestamp far ahead (a new stream without a new SSRC).
    buffer.put(10_000_000, payload(99), TICKS, arrival=0.2)
    assert buffer.counters.resyncs == 1
    assert buffer.pull(0.2, True) is None
    assert played(pull(buffer, 0.25).segments) == [99]


def simulate(
    phase_ms: float, jitter_ms: float, seconds: float = 60, seed: int = 1
) -> tuple[JitterBuffer, int, list[float]]:
    """A sender on its own 20 ms clock, packets delayed by 5 ms plus half-normal jitter; our
    pulls on an independent 20 ms clock at a phase offset. Returns the buffer, the frames it
    had to conceal while playing, and its delay every second."""
    rnd = random.Random(seed)
    buffer = JitterBuffer()
    count = int(seconds / FRAME)
    events: list[tuple[float, int, int]] = []
    for n in range(count):
        events.append((n * FRAME + 0.005 + abs(rnd.gauss(0, jitter_ms / 1000)), 0, n))
    for k in range(count):
        events.append((k * FRAME + phase_ms / 1000, 1, k))
    events.sort()
    concealed = 0
    delays: list[float] = []
    last_packet_at = count * FRAME
    for at, kind, n in events:
        if kind == 0:
            buffer.put(n * TICKS, payload(n), TICKS, at)
            continue
        result = buffer.pull(at, True)
        if result is None or at > last_packet_at - 0.5:
            continue
        concealed += sum(1 for s in result.segments if isinstance(s, int))
        concealed += result.frames == 0
        if n % 50 == 0:
            delays.append(buffer.delay_ms)
    return buffer, concealed, delays


@pytest.mark.parametrize("jitter_ms", [2, 3, 5])
def test_independent_clocks_at_any_phase_conceal_almost_nothing(jitter_ms: float) -> None:
    # aiortp's AdaptivePlayout concealed up to 556 of these 3000 frames at unlucky phases.
    for phase in range(0, 20, 2):
        buffer, concealed, _ = simulate(phase + 0.25, jitter_ms)
        assert concealed <= 3, (phase, concealed, buffer.counters)


def test_the_delay_follows_the_jitter_and_comes_back_down() -> None:
    _, _, calm = simulate(7.25, jitter_ms=1, seconds=20)
    _, _, rough = simulate(7.25, jitter_ms=15, seconds=20)
    assert max(calm[5:]) < 45
    assert sum(rough[5:]) / len(rough[5:]) > sum(calm[5:]) / len(calm[5:]) + 15


def test_a_transient_delay_spike_is_followed_then_shed() -> None:
    buffer = JitterBuffer()
    count = 40 * 50
    pulls = 0
    for k in range(count):
        now = k * FRAME + 0.013
        spike = 0.12 if 500 <= k < 510 else 0.0
        buffer.put(k * TICKS, payload(k), TICKS, k * FRAME + 0.005 + spike)
        result = buffer.pull(now, True)
        pulls += result is not None
        if k == 520:
            assert buffer.delay_ms > 100
    assert buffer.counters.shrunk >= 5
    assert buffer.delay_ms < 45


def test_shrinking_waits_for_quiet_audio_for_a_while() -> None:
    config = JitterConfig(shrink_after_s=1.0, force_shrink_after_s=4.0)
    buffer = JitterBuffer(config)
    for n in range(10):
        buffer.put(n * TICKS, payload(n), TICKS, n * FRAME)
    frames = []
    for k in range(200):
        n = 10 + k
        now = n * FRAME
        buffer.put(n * TICKS, payload(n), TICKS, now)
        # 200 ms deep: no shrink through loud audio before 4 s of it...
        frames.append(pull(buffer, now, quiet=k >= 150).frames)
    assert 2 not in frames[:150]
    # ...but at once when it turns quiet.
    assert frames[150] == 2


def test_a_buffer_nobody_pulls_does_not_grow_without_bound() -> None:
    buffer = JitterBuffer()
    for n in range(1000):
        buffer.put(n * TICKS, payload(n), TICKS, arrival=n * FRAME)
    assert buffer.counters.resyncs == 9
    assert len(pull(buffer, 1000 * FRAME).segments) == 1
    assert buffer.counters.caught_up == 1


def test_pulls_that_fell_behind_catch_up_instead_of_playing_late() -> None:
    buffer = JitterBuffer()
    for n in range(10):
        buffer.put(n * TICKS, payload(n), TICKS, n * FRAME)
        pull(buffer, n * FRAME + 0.045)
    # The loop stalls for a second: 50 ticks never come, the packets keep arriving.
    for n in range(10, 60):
        buffer.put(n * TICKS, payload(n), TICKS, n * FRAME)
    out = played(pull(buffer, 60 * FRAME + 0.005).segments)
    assert buffer.counters.caught_up == 1
    assert buffer.counters.dropped >= 40
    assert out[0] != 8
    assert buffer.delay_ms < 60
