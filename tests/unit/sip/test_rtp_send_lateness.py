from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bridge.sip.rtp import SendLateness
from bridge.sip.rtp_packet import SendTimeline


def test_lateness_is_exposed_as_a_cumulative_histogram() -> None:
    lateness = SendLateness()
    for seconds in (0.0, 0.0004, 0.0005, 0.0015, 0.004, 0.2):
        lateness.observe(seconds)
    registry = CollectorRegistry()
    registry.register(lateness)
    text = generate_latest(registry).decode()
    name = "voicebridge_rtp_send_lateness_seconds"
    # Buckets count what is at most their bound, as Prometheus' `le` means.
    assert f'{name}_bucket{{le="0.0005"}} 3.0' in text
    assert f'{name}_bucket{{le="0.002"}} 4.0' in text
    assert f'{name}_bucket{{le="0.005"}} 5.0' in text
    assert f'{name}_bucket{{le="0.1"}} 5.0' in text
    assert f'{name}_bucket{{le="+Inf"}} 6.0' in text
    assert f"{name}_count 6.0" in text
    assert registry.get_sample_value(f"{name}_sum") == pytest.approx(0.2064)


def test_the_timeline_tells_when_the_frame_was_due() -> None:
    timeline = SendTimeline(0, 160, 0.02)
    with pytest.raises(RuntimeError):
        _ = timeline.due
    timeline.next(100.0)
    assert timeline.due == 100.0
    timeline.next(100.0213)
    assert timeline.due == pytest.approx(100.02)
    # Three frames never sent: the grid keeps its phase.
    timeline.next(100.1004)
    assert timeline.due == pytest.approx(100.1)
