"""A short switch interval while an agent thread answers a client.

On a target whose threads keep the GIL busy, an agent thread that returns
from a system call waits for the interpreter's switch interval (5 ms by
default) before the running thread is asked to let go. Answering one CLI
command takes several such returns (accept, the reader thread's start, the
read of the request), so the command would cost the target's threads
nothing but the client tens of milliseconds.

The bootstrap lowers the interval while the agent loads, and the agent
keeps that boost until its first client connects (the client that
attached, a moment later), or for a second at most. While a connection is
being admitted and its first request answered, the agent lowers the switch
interval to :data:`BOOSTED_INTERVAL`: every thread,
the application's too, then hands the GIL over after at most that long,
which is shorter than the usual hold, never longer. The previous value comes
back as soon as the last boost ends, and only if the interval is still the
one the agent set: a value the application set meanwhile is left alone. A
boost is only ever held for a bounded time (see ``Connection``); an idle
agent costs nothing, since the interval matters only while a thread waits
for the GIL.
"""

import sys
import threading

#: The switch interval while boosted, in seconds.
BOOSTED_INTERVAL = 0.0001


def _microseconds(seconds):
    # The interpreter keeps the interval in whole microseconds.
    return int(round(seconds * 1e6))


class GilBoost(object):
    """Counted boosts of the switch interval (thread-safe, never raises)."""

    def __init__(self, interval=BOOSTED_INTERVAL):
        self.interval = interval
        self._lock = threading.Lock()
        self._holders = 0
        self._saved = None  # the interval to restore, when we lowered it
        self._adopted = False  # holding the bootstrap's boost

    def acquire(self):
        """Starts one boost; pair every call with :meth:`release`."""
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                try:
                    current = sys.getswitchinterval()
                    if current > self.interval:
                        sys.setswitchinterval(self.interval)
                        self._saved = current
                except BaseException:
                    self._saved = None

    def adopt(self, previous):
        """Takes over the bootstrap's boost: the interval was lowered from
        ``previous`` while the agent loaded. Held until
        :meth:`release_adopted`, and restored like any other boost."""
        with self._lock:
            self._holders += 1
            self._adopted = True
            try:
                current = sys.getswitchinterval()
                if self._holders == 1 and previous > self.interval:
                    if _microseconds(current) == _microseconds(self.interval):
                        self._saved = previous
            except BaseException:
                pass

    @property
    def adopted(self):
        """Whether the bootstrap's boost is still held."""
        return self._adopted

    def release_adopted(self):
        """Ends the bootstrap's boost (no effect after the first call)."""
        with self._lock:
            if self._adopted:
                self._adopted = False
                self._release_locked()

    def release(self):
        """Ends one boost; the last one restores the interval."""
        with self._lock:
            self._release_locked()

    def _release_locked(self):
        if self._holders == 0:
            return
        self._holders -= 1
        if self._holders or self._saved is None:
            return
        saved, self._saved = self._saved, None
        try:
            if _microseconds(sys.getswitchinterval()) == _microseconds(self.interval):
                sys.setswitchinterval(saved)
        except BaseException:
            pass

    def forget_in_child(self):
        """In a forked child: gives the interval back if a boost holds it, takes no lock.

        The child has none of the threads that held the boosts.
        """
        self._lock = threading.Lock()
        self._holders = 0
        self._adopted = False
        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                if _microseconds(sys.getswitchinterval()) == _microseconds(self.interval):
                    sys.setswitchinterval(saved)
            except BaseException:
                pass

    @property
    def active(self):
        """Whether some boost is held."""
        return self._holders > 0
