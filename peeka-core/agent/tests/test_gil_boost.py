"""The switch-interval boost: lowered while a connection is admitted, always restored."""

import importlib
import socket
import sys
import time
import unittest

from tests.support import RawClient, make_private_dir, new_token, wait_until
from tests.test_agent import AgentTestCase


class GilBoostTests(AgentTestCase):
    def setUp(self):
        self.original = sys.getswitchinterval()
        self.addCleanup(sys.setswitchinterval, self.original)
        super().setUp()
        self.boost_module = importlib.import_module(self.module.__name__ + ".gil_boost")

    def test_nested_boosts_restore_once_and_keep_the_applications_value(self):
        boost = self.boost_module.GilBoost()
        boost.acquire()
        boost.acquire()
        self.assertAlmostEqual(sys.getswitchinterval(), boost.interval, places=9)
        boost.release()
        self.assertAlmostEqual(sys.getswitchinterval(), boost.interval, places=9)
        boost.release()
        self.assertEqual(sys.getswitchinterval(), self.original)
        boost.release()  # one release too many changes nothing
        self.assertEqual(sys.getswitchinterval(), self.original)
        # The application sets its own interval during a boost: it stays.
        boost.acquire()
        sys.setswitchinterval(0.002)
        boost.release()
        self.assertAlmostEqual(sys.getswitchinterval(), 0.002, places=9)
        # An interval already shorter than the boost's is never raised.
        sys.setswitchinterval(0.00005)
        boost.acquire()
        self.assertAlmostEqual(sys.getswitchinterval(), 0.00005, places=9)
        boost.release()
        self.assertAlmostEqual(sys.getswitchinterval(), 0.00005, places=9)

    def test_an_adopted_boost_ends_with_the_first_client_or_after_a_while(self):
        boost = self.agent.gil_boost
        # As the bootstrap hands it over: lowered already, previous value given.
        sys.setswitchinterval(boost.interval)
        boost.adopt(self.original)
        self.assertTrue(boost.adopted)
        client = self.client()
        self.assertTrue(client.call("ping")["ok"])
        self.assertTrue(wait_until(lambda: not boost.active, timeout=2.0))
        self.assertFalse(boost.adopted)
        self.assertEqual(sys.getswitchinterval(), self.original)

    def test_an_adopted_boost_ends_after_a_while_when_no_client_comes(self):
        directory = make_private_dir()
        agent = self.module.Agent(directory, new_token(), package_name=self.module.__name__)
        boost = agent.gil_boost
        sys.setswitchinterval(boost.interval)
        boost.adopt(self.original)
        started = time.monotonic()
        agent.start()
        self.addCleanup(agent.detach)
        self.assertTrue(wait_until(lambda: not boost.active, timeout=5.0))
        self.assertLess(time.monotonic() - started, 4.0)
        self.assertEqual(sys.getswitchinterval(), self.original)

    def test_a_command_leaves_the_interval_as_it_was(self):
        for _ in range(3):
            client = self.client()
            self.assertTrue(client.call("ping")["ok"])
            self.assertTrue(wait_until(lambda: not self.agent.gil_boost.active))
            self.assertEqual(sys.getswitchinterval(), self.original)
            client.close()

    def test_a_silent_client_loses_the_boost(self):
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(silent.close)
        silent.connect(self.socket_path)
        self.assertTrue(wait_until(lambda: self.agent.gil_boost.active, timeout=2.0))
        started = time.monotonic()
        self.assertTrue(wait_until(lambda: not self.agent.gil_boost.active, timeout=2.0))
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(sys.getswitchinterval(), self.original)
        # It may still say hello afterwards, and be answered.
        client = RawClient.over(silent)
        self.assertEqual(client.handshake()["type"], "welcome")

    def test_a_client_that_hangs_up_at_once_releases_the_boost(self):
        for _ in range(5):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket_path)
            sock.close()
        self.assertTrue(wait_until(lambda: not self.agent.gil_boost.active, timeout=2.0))
        self.assertEqual(sys.getswitchinterval(), self.original)


if __name__ == "__main__":
    unittest.main()
