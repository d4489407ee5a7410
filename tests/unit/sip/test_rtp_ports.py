from __future__ import annotations

import pytest

from bridge.sip.ports import RtpPorts, RtpPortsExhausted


def test_pairs_start_even_and_rotate_through_the_range() -> None:
    ports = RtpPorts(10001, 10008)
    assert (ports.low, ports.capacity) == (10002, 3)
    assert [ports.reserve() for _ in range(3)] == [10002, 10004, 10006]
    ports.release(10002)
    assert ports.in_use == 2
    assert ports.reserve() == 10002


def test_a_released_pair_is_the_last_to_come_back() -> None:
    ports = RtpPorts(20000, 20009)
    first = ports.reserve()
    ports.release(first)
    assert [ports.reserve() for _ in range(4)] == [20002, 20004, 20006, 20008]
    assert ports.reserve() == first


def test_exhaustion_is_a_clear_error() -> None:
    ports = RtpPorts(30000, 30003)
    ports.reserve()
    ports.reserve()
    with pytest.raises(RtpPortsExhausted, match="all 2 RTP port pairs in 30000-30003 are in use"):
        ports.reserve()


@pytest.mark.parametrize("low,high", [(5000, 5000), (5001, 5002), (0, 10), (60000, 70000)])
def test_ranges_without_a_pair_are_refused(low: int, high: int) -> None:
    with pytest.raises(ValueError):
        RtpPorts(low, high)
