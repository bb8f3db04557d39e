"""A bounded log-scale histogram of latencies, for ``monitor``'s percentiles.

Buckets grow by a factor of :data:`RATIO` (1.08) from :data:`LOWEST`
(100 ns) to :data:`HIGHEST` (about 1000 s), about 300 of them whatever the
number of samples. A percentile is the geometric middle of its bucket,
clamped to the exact minimum and maximum seen, so its relative error is at
most ``sqrt(RATIO) - 1``, under 4% (values below 100 ns fall in the first
bucket and are reported as the minimum).

Not thread-safe: ``monitor`` updates it under its lock.
"""

import math

RATIO = 1.08
LOWEST = 1e-7
HIGHEST = 1e3
_LOG_RATIO = math.log(RATIO)
BUCKETS = int(math.log(HIGHEST / LOWEST) / _LOG_RATIO) + 2
_INVERSE_LOWEST = 1.0 / LOWEST
_INFINITY = float("inf")


def bucket_of(seconds, _log=math.log, _lowest=LOWEST, _scale=1.0 / _LOG_RATIO, _last=BUCKETS - 1):
    """The bucket index of a duration in seconds."""
    if seconds <= _lowest:
        return 0
    index = int(_log(seconds / _lowest) * _scale) + 1
    return index if index < _last else _last


def bucket_middle(index):
    """The representative value (seconds) of a bucket: the geometric middle of its bounds."""
    if index <= 0:
        return LOWEST
    return LOWEST * RATIO ** (index - 0.5)


class LatencyHistogram(object):
    """Counts, sum, min, max and log-scale buckets of durations (seconds)."""

    __slots__ = ("count", "failures", "total", "minimum", "maximum", "buckets")

    def __init__(self):
        self.count = 0
        self.failures = 0
        self.total = 0.0
        self.minimum = _INFINITY
        self.maximum = 0.0
        self.buckets = [0] * BUCKETS

    def add(self, seconds, ok=True, _log=math.log, _scale=1.0 / _LOG_RATIO, _last=BUCKETS - 1):
        """Records one duration (``ok`` False counts a failure)."""
        self.count += 1
        if not ok:
            self.failures += 1
        self.total += seconds
        if seconds < self.minimum:
            self.minimum = seconds
        if seconds > self.maximum:
            self.maximum = seconds
        if seconds <= LOWEST:
            self.buckets[0] += 1
        else:
            index = int(_log(seconds * _INVERSE_LOWEST) * _scale) + 1
            self.buckets[index if index < _last else _last] += 1

    def percentile(self, fraction):
        """The duration under which ``fraction`` (0..1) of the samples fall; 0.0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, int(math.ceil(fraction * self.count)))
        if rank >= self.count:
            return self.maximum
        if rank == 1:
            return self.minimum
        seen = 0
        for index, number in enumerate(self.buckets):
            seen += number
            if seen >= rank:
                value = bucket_middle(index)
                return min(max(value, self.minimum), self.maximum)
        return self.maximum
