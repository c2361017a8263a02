"""The SMTP throttle (SMTP_MAX_PER_SECOND): a token bucket, against a fake clock, and the delivery worker using it."""

from __future__ import annotations

import pytest

from notifications.adapters.throttle import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unlimited_never_waits():
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock)
    assert bucket.unlimited and all(bucket.reserve() == 0 for _ in range(1000))


def test_a_burst_queues_up_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)  # two a second, bursts of one
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])


def test_sends_that_keep_to_the_rate_never_wait_and_idle_time_does_not_pile_up():
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock)
    for _ in range(20):
        assert bucket.reserve() == 0
        clock.now += 0.25
    clock.now += 3600  # an hour idle earns one send, not 14,400
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.25)


def test_waiting_out_each_reservation_gives_the_rate_over_a_long_run():
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5, clock=clock)
    start = clock.now
    for _ in range(105):
        clock.now += bucket.reserve()  # the worker sleeps this long before it sends
    assert clock.now - start == pytest.approx(10.0)  # 5 at once, then 100 at 10 a second
