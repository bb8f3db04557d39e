"""The CPU budget that all of an agent's writers share.

A probe on a hot function can produce far more observations than any client
can take, and rendering one (capture, JSON) costs the writer 100 times what
producing it cost the target, with the GIL held. Left alone, a writer would
take a large share of the GIL from the target's threads under such a flood
(measured: 12-20 % of a CPU on a busy 2-core machine), and N clients
watching one hot function would take N such shares (20 clients cut a
target's throughput to 0.1 % of its baseline).

So the writers of all connections spend from one budget, the agent's: a
token bucket of CPU time (``time.thread_time`` of the writer threads),
filling at :data:`WRITER_SHARE` of one CPU (10 %) up to
:data:`WRITER_BURST` (20 ms) of credit. A stream may ask for another share,
up to :data:`MAX_WRITER_SHARE` (``send_budget``, a percentage, of ``watch``,
``stack`` and ``trace``): the operator who wants every row of a flood and
accepts its cost says so; the bucket fills at the largest share an open
stream of any client asked for, or at the default.

A writer charges each batch it wrote; it writes its next batch only while
the bucket is not in debt, and otherwise sleeps until the debt is repaid
and :data:`WRITER_RESUME` (10 ms) more is available. Every writer waits
for the same bucket, and each writes one batch (at most a few ms of CPU)
per turn, so the writers of many flooding clients share the budget about
equally, and together they take what one would; with the parking of
their probes (see :mod:`.outbox`), 20 flooding clients cost the target
about what one costs. Meanwhile queues fill to their bound and producers
drop and count, per stream, as they do whenever a queue is full (see
:mod:`.outbox` for the shedding after a pause). Light traffic never
reaches the budget.
"""

import threading
import time

#: The agent's writers' CPU budget under a flood: the share of one CPU
#: they may use together for rendering, encoding and writing...
WRITER_SHARE = 0.1
#: ... after a burst of this much CPU time (seconds) at full speed.
WRITER_BURST = 0.02
#: A writer that finds the budget in debt sleeps until it holds this much
#: CPU time (seconds) again: the pauses are long enough that the shedding
#: after each one stays a small part of the budget.
WRITER_RESUME = 0.01
#: The largest share a stream may ask for instead (``send_budget``): the
#: target's threads keep at least the rest.
MAX_WRITER_SHARE = 0.5


class WriterBudget(object):
    """One token bucket of CPU time for every writer of an agent (thread-safe)."""

    def __init__(self):
        #: The share of a CPU asked for by each open stream that asked
        #: (stream -> share); the bucket fills at the largest.
        self.shares = {}
        self._lock = threading.Lock()
        self._credit = None  # full, once first used
        self._last = None

    def share(self):
        """The share of one CPU the writers may use now."""
        shares = self.shares
        if not shares:
            return WRITER_SHARE
        try:
            return max(shares.values())
        except (RuntimeError, ValueError):  # changed or emptied meanwhile
            return WRITER_SHARE

    def charge(self, used):
        """Records ``used`` seconds of a writer's CPU; returns how long it must sleep first (0: none).

        A writer calls ``charge(cost of its batch)``, then, while the answer
        is above 0, sleeps that long and calls ``charge(0.0)`` again: what
        other writers spent meanwhile is owed too.
        """
        share = self.share()
        burst = WRITER_BURST
        with self._lock:
            now = time.monotonic()
            if self._credit is None:
                credit = burst
            else:
                credit = min(burst, self._credit + (now - self._last) * share)
            credit -= used
            self._credit = credit
            self._last = now
        if credit >= 0.0:
            return 0.0
        return (min(WRITER_RESUME, burst) - credit) / share
