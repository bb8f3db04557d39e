"""The listener thread: accepting connections and waiting for their hellos.

One agent thread, ``peeka-agent``, does everything a connection needs
before it has said hello, so that connections that say nothing cost the
target no thread and little memory:

- it waits in ``poll()`` on the listening socket and on every connection
  whose hello has not come yet, with no timer while nothing is pending (an
  idle agent never wakes up);
- it checks each accepted peer's credentials before a single byte is read
  (:mod:`.peercred`); refused peers are closed at once and counted;
- it reads hellos itself, without blocking: a frame longer than
  ``MAX_HELLO_LEN`` (64 KiB) is refused on its length alone, a connection
  silent for the agent's ``hello_timeout`` (5 s) is closed, and at most
  :data:`MAX_PENDING` connections wait for their hello at once; a new one
  beyond that closes the one that has waited longest (so the operator who
  connects now is never the one closed);
- a complete hello hands the connection, its credentials and the bytes
  already read to ``Agent.admit`` (see :mod:`.server`), which starts its
  reader thread ``peeka-conn-<n>``, or makes room, or refuses it.

Memory before the hello is therefore at most ``MAX_PENDING`` times 64 KiB,
and agent threads at most one per admitted client (``max_connections``)
plus a writer for each that streams.

The GIL boost (see :mod:`.gil_boost`): accepting a connection starts a
boost, handed to the connection with its hello; a connection that has not
said hello within ``BOOST_WAIT`` gives its boost up.
"""

import errno
import select
import time

from . import fork_guard
from .connection import BOOST_WAIT
from .peercred import admits, describe_refusal, peer_credentials
from .wire import MAX_HELLO_LEN, FrameReader, ProtocolError

#: Most connections waiting for their hello at once.
MAX_PENDING = 16

#: How long the agent keeps the bootstrap's switch-interval boost while no
#: client has connected (seconds; see gil_boost).
FIRST_CLIENT_WAIT = 1.0

_ACCEPTED = "accepted"
_POLL_IN = select.POLLIN | select.POLLPRI
_POLL_DONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class Pending(object):
    """A connection accepted whose hello has not come yet."""

    __slots__ = ("sock", "reader", "credentials", "deadline", "boost_until")

    def __init__(self, sock, credentials, now, hello_timeout):
        self.sock = sock
        self.reader = FrameReader(sock, max_len=MAX_HELLO_LEN)
        self.credentials = credentials
        self.deadline = now + hello_timeout
        #: When its GIL boost ends if no hello came; None once given up.
        self.boost_until = now + BOOST_WAIT


class Admission(object):
    """The listener's loop (see the module documentation)."""

    def __init__(self, agent, listener):
        self.agent = agent
        self.listener = listener
        #: fileno -> Pending, oldest first.
        self.pending = {}
        self._poller = select.poll()
        self._adopted_until = None

    def run(self):
        """The listener thread's body: returns when the agent stops or accept() fails for good."""
        agent = self.agent
        boost = agent.gil_boost
        listener = self.listener
        listening = listener.fileno()
        poller = self._poller
        listener.setblocking(False)
        poller.register(listening, _POLL_IN)
        if boost.adopted:
            # The bootstrap's boost lasts until the first client comes.
            self._adopted_until = time.monotonic() + FIRST_CLIENT_WAIT
        try:
            while not agent.stopping.is_set():
                events = poller.poll(self._timeout_ms())
                for descriptor, mask in events:
                    if descriptor == listening:
                        if not self._accept_all():
                            return
                    else:
                        self._read_hello(descriptor, mask)
                self._expire(time.monotonic())
        finally:
            boost.release_adopted()
            for descriptor in list(self.pending):
                self._drop(descriptor)
            try:
                listener.close()
            except OSError:
                pass

    def forget_in_child(self):
        """In a forked child: closes the child's copies of the pending sockets, no lock taken."""
        for pending in list(self.pending.values()):
            fork_guard.close_inherited(pending.sock)
        self.pending.clear()

    # -- the loop's parts ------------------------------------------------------

    def _timeout_ms(self):
        """poll()'s timeout: until the next deadline, or None (no timer) when nothing waits."""
        deadlines = [p.deadline for p in self.pending.values()]
        deadlines.extend(p.boost_until for p in self.pending.values() if p.boost_until)
        if self._adopted_until is not None:
            deadlines.append(self._adopted_until)
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _expire(self, now):
        if self._adopted_until is not None and now >= self._adopted_until:
            self._adopted_until = None
            self.agent.gil_boost.release_adopted()
        for descriptor, pending in list(self.pending.items()):
            if now >= pending.deadline:
                self.agent.record_error(
                    "a connection was closed: no hello within %.1f s" % self.agent.hello_timeout
                )
                self._drop(descriptor)
            elif pending.boost_until is not None and now >= pending.boost_until:
                pending.boost_until = None
                self.agent.gil_boost.release()

    def _accept_all(self):
        """Accepts every connection waiting (the backlog); False when the listener is done."""
        while True:
            outcome = self._accept()
            if outcome is not _ACCEPTED:
                return outcome

    def _accept(self):
        """Accepts one connection: _ACCEPTED, or True (none left now) or False (the listener is done)."""
        agent = self.agent
        try:
            sock, _address = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return not agent.stopping.is_set()
        except OSError as exc:
            if agent.stopping.is_set():
                return False
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                return _ACCEPTED
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of resources: wait a little (only in this error case).
                agent.record_error("accept() failed", exc)
                agent.stopping.wait(0.2)
                return True
            agent.record_error("the listener stopped: accept() failed", exc)
            return False
        if agent.stopping.is_set():
            sock.close()
            return False
        sock.setblocking(False)
        boost = agent.gil_boost
        boost.acquire()
        self._adopted_until = None
        boost.release_adopted()
        try:
            credentials = peer_credentials(sock)
        except OSError as exc:
            agent.refused_connections += 1
            agent.record_error("refused a connection: its credentials are unreadable", exc)
            sock.close()
            boost.release()
            return _ACCEPTED
        if not admits(credentials.uid):
            agent.refused_connections += 1
            agent.record_error(describe_refusal(credentials))
            sock.close()
            boost.release()
            return _ACCEPTED
        if len(self.pending) >= MAX_PENDING:
            oldest = next(iter(self.pending))
            agent.record_error(
                "a connection was closed before its hello: %d newer ones were waiting for theirs"
                % MAX_PENDING
            )
            self._drop(oldest)
        descriptor = sock.fileno()
        self.pending[descriptor] = Pending(sock, credentials, time.monotonic(), agent.hello_timeout)
        self._poller.register(descriptor, _POLL_IN)
        # A client sends its hello with the connect: it may be here already.
        self._read_hello(descriptor, select.POLLIN)
        return _ACCEPTED

    def _read_hello(self, descriptor, mask):
        pending = self.pending.get(descriptor)
        if pending is None:
            return
        try:
            data = pending.sock.recv(FrameReader.CHUNK)
        except (BlockingIOError, InterruptedError):
            if mask & _POLL_DONE:
                self._drop(descriptor)
            return
        except OSError:
            self._drop(descriptor)
            return
        if not data:  # closed before its hello
            self._drop(descriptor)
            return
        reader = pending.reader
        reader.feed(data)
        try:
            reader.check_length()
        except ProtocolError as exc:
            self.agent.record_error("a connection was closed: protocol error: %s" % exc)
            self._drop(descriptor)
            return
        if reader.has_frame():
            self._forget(descriptor)
            pending.sock.setblocking(True)
            self.agent.admit(
                pending.sock, pending.reader, pending.credentials, pending.boost_until is not None
            )

    def _forget(self, descriptor):
        self.pending.pop(descriptor, None)
        try:
            self._poller.unregister(descriptor)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, descriptor):
        """Closes a pending connection (and gives its boost up)."""
        pending = self.pending.get(descriptor)
        self._forget(descriptor)
        if pending is None:
            return
        if pending.boost_until is not None:
            pending.boost_until = None
            self.agent.gil_boost.release()
        try:
            pending.sock.close()
        except OSError:
            pass

