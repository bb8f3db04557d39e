"""capture: hostile values become placeholders, never exceptions; every bound holds."""

import collections
import datetime
import decimal
import enum
import json
import sys
import threading
import time
import unittest

from peeka_agent import wire
from peeka_agent.capture import (
    BUDGET_EXHAUSTED,
    REDACTED,
    CaptureLimits,
    Capturer,
    is_secret_name,
)


def encodable(test, value):
    """The capture must always be valid protocol JSON."""
    wire.encode_frame({"type": "event", "data": value})


class RaisingRepr(object):
    def __repr__(self):
        raise ValueError("boom")


class RecursiveRepr(object):
    def __repr__(self):
        return repr(self)


class HugeRepr(object):
    def __repr__(self):
        return "x" * 5000000


class NonStringRepr(object):
    def __repr__(self):
        return 42


class StrSubclassRepr(object):
    class Text(str):
        pass

    def __repr__(self):
        return self.Text("custom")


class LyingClass(object):
    @property
    def __class__(self):
        return list

    def __getattr__(self, name):
        raise RuntimeError("__getattr__ must not run")


class RaisingProperty(object):
    def __init__(self):
        self.visible = 1

    @property
    def hidden(self):
        raise RuntimeError("properties must not run")


class ExitingRepr(object):
    def __repr__(self):
        raise SystemExit("nope")


class BadExceptionText(Exception):
    def __str__(self):
        raise ValueError("no text")


class RaisingStrInRepr(object):
    def __repr__(self):
        raise BadExceptionText()


class Slotted(object):
    __slots__ = ("a", "__private", "unset")

    def __init__(self):
        self.a = 1
        self.__private = 2


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


Point = collections.namedtuple("Point", "x y")


class OverridingList(list):
    def __iter__(self):
        raise RuntimeError("overridden __iter__ must not run")

    def __getitem__(self, index):
        raise RuntimeError("overridden __getitem__ must not run")

    def __len__(self):
        raise RuntimeError("overridden __len__ must not run")


class OverridingDict(dict):
    def items(self):
        raise RuntimeError("overridden items must not run")

    def __iter__(self):
        raise RuntimeError("overridden __iter__ must not run")


class OverridingStr(str):
    def __str__(self):
        raise RuntimeError("overridden __str__ must not run")

    def __getitem__(self, index):
        raise RuntimeError("overridden __getitem__ must not run")


class User(object):
    def __init__(self):
        self.name = "bob"
        self.password = "hunter2"
        self.tags = [1, 2]
        self.profile = {"api_key": "k", "city": "Paris"}


class CaptureTests(unittest.TestCase):
    def setUp(self):
        self.capturer = Capturer()

    def capture(self, value, **limits):
        capturer = Capturer(CaptureLimits(**limits)) if limits else self.capturer
        result = capturer.capture(value)
        encodable(self, result)
        return result

    # -- scalars -------------------------------------------------------------

    def test_json_native_scalars(self):
        for value in (None, True, False, 0, -5, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, "text", ""):
            self.assertEqual(self.capture(value), value)

    def test_non_finite_floats(self):
        self.assertEqual(self.capture(float("nan")), "NaN")
        self.assertEqual(self.capture(float("inf")), "Infinity")
        self.assertEqual(self.capture(float("-inf")), "-Infinity")
        self.assertEqual(self.capture([float("nan")]), ["NaN"])

    def test_big_ints(self):
        self.assertEqual(self.capture(2**70), str(2**70))
        self.assertEqual(self.capture(-(2**70)), str(-(2**70)))
        self.assertEqual(self.capture(2**100000), "<int of 100001 bits>")

    def test_long_string_is_truncated_with_its_length(self):
        result = self.capture("a" * 1000)
        self.assertTrue(result.startswith("a" * 255 + "..."))
        self.assertIn("1000 chars", result)
        self.assertLess(len(result), 300)
        self.assertEqual(self.capture("abc", max_string=2), "ab...<truncated, 3 chars>")

    def test_bytes(self):
        self.assertEqual(self.capture(b"\x00ab"), "b'\\x00ab'")
        self.assertEqual(self.capture(bytearray(b"xy")), "bytearray(b'xy')")
        long = self.capture(b"z" * 1000)
        self.assertIn("1000 bytes", long)
        self.assertLess(len(long), 300)

    def test_complex_and_lone_surrogates(self):
        self.assertEqual(self.capture(1 + 2j), "(1+2j)")
        self.assertEqual(self.capture("a\udc80"), "a\udc80")  # the wire layer replaces it

    # -- containers ----------------------------------------------------------

    def test_containers_expand_one_level_by_default(self):
        self.assertEqual(self.capture([1, "a", None]), [1, "a", None])
        self.assertEqual(self.capture((1, 2)), [1, 2])
        self.assertEqual(sorted(self.capture({3, 1})), [1, 3])
        self.assertEqual(self.capture(frozenset([5])), [5])
        self.assertEqual(self.capture(collections.deque([1, 2])), [1, 2])
        self.assertEqual(
            self.capture({"a": [1, 2], "b": {"c": 1}}), {"a": "<list len=2>", "b": "<dict len=1>"}
        )
        self.assertEqual(self.capture([[1]], depth=0), "<list len=1>")
        self.assertEqual(self.capture({"a": [1, 2]}, depth=2), {"a": [1, 2]})

    def test_depth_is_capped_at_four(self):
        with self.assertRaises(ValueError):
            CaptureLimits(depth=5)
        with self.assertRaises(ValueError):
            CaptureLimits(max_items=0)

    def test_items_per_collection(self):
        result = self.capture(list(range(1000)))
        self.assertEqual(len(result), 101)
        self.assertEqual(result[:100], list(range(100)))
        self.assertEqual(result[100], "<900 more items of 1000>")
        mapping = self.capture(dict((str(i), i) for i in range(250)))
        self.assertEqual(len(mapping), 101)
        self.assertEqual(mapping["@more"], "<150 more of 250>")
        self.assertEqual(len(self.capture(set(range(500)))), 101)

    def test_dict_keys_that_are_not_strings(self):
        result = self.capture(
            {1: "a", "1": "b", (1, 2): 3, None: 4, 2.5: 5, b"k": 6, RaisingRepr(): 7}
        )
        self.assertEqual(result["1"], "a")
        self.assertEqual(result["1#2"], "b")
        self.assertEqual(result["(1, 2)"], 3)
        self.assertEqual(result["None"], 4)
        self.assertEqual(result["2.5"], 5)
        self.assertEqual(result["b'k'"], 6)
        (shown,) = [key for key in result if "RaisingRepr" in key]
        self.assertRegex(shown, r"^<.*RaisingRepr object at 0x[0-9a-f]+>$")
        self.assertEqual(result[shown], 7)
        opted = self.capture({RaisingRepr(): 7}, call_repr=True)
        self.assertEqual(opted, {"<repr failed: ValueError: boom>": 7})

    def test_cycles(self):
        loop = [1]
        loop.append(loop)
        self.assertEqual(self.capture(loop), [1, "<list len=2>"])
        self.assertEqual(self.capture(loop, depth=4), [1, "<cycle: list>"])
        mapping = {}
        mapping["self"] = mapping
        self.assertEqual(self.capture(mapping, depth=3), {"self": "<cycle: dict>"})

    def test_very_deep_structures(self):
        deep = []
        cursor = deep
        for _ in range(100000):
            cursor.append([])
            cursor = cursor[0]
        self.assertEqual(self.capture(deep, depth=4), [[[["<list len=1>"]]]])

    def test_byte_budget(self):
        value = ["x" * 200 for _ in range(100)] * 1
        nested = [value] * 100
        result = Capturer(CaptureLimits(depth=2, max_bytes=10000)).capture(nested)
        size = len(json.dumps(result))
        self.assertLess(size, 10000 + 1000)
        self.assertIn(BUDGET_EXHAUSTED, json.dumps(result))

    def test_budget_bounds_the_worst_case(self):
        wide = [[[["y" * 255] * 100] * 100] * 100] * 100
        started = time.perf_counter()
        result = Capturer(CaptureLimits(depth=4)).capture(wide)
        elapsed = time.perf_counter() - started
        self.assertLess(len(json.dumps(result)), 64 * 1024 + 2000)
        self.assertLess(elapsed, 0.5)

    def test_container_mutated_by_another_thread(self):
        data = dict((i, i) for i in range(3000))
        stop = threading.Event()

        def mutate():
            key = 10**6
            while not stop.is_set():
                data[key] = 1
                del data[key]
                key += 1

        thread = threading.Thread(target=mutate)
        thread.start()
        try:
            seen = set()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and len(seen) < 2:
                result = self.capture(data, max_items=5000, max_bytes=10**7)
                self.assertTrue(isinstance(result, (dict, str)))
                seen.add(type(result))
        finally:
            stop.set()
            thread.join()

    # -- objects -------------------------------------------------------------

    def test_hostile_reprs_are_guarded_when_called_on_request(self):
        def capture(value):
            return self.capture(value, call_repr=True)

        self.assertEqual(capture(RaisingRepr()), "<repr failed: ValueError: boom>")
        self.assertEqual(capture(RecursiveRepr()), "<repr failed: RecursionError>")
        self.assertIn("TypeError", capture(NonStringRepr()))
        self.assertEqual(capture(StrSubclassRepr()), "custom")
        self.assertEqual(capture(ExitingRepr()), "<repr failed: SystemExit: nope>")
        self.assertTrue(capture(RaisingStrInRepr()).startswith("<repr failed: "))
        huge = capture(HugeRepr())
        self.assertTrue(huge.endswith("<truncated, 5000000 chars>"))
        self.assertLess(len(huge), 300)

    def test_objects_are_expanded_from_their_fields_only(self):
        result = self.capture(RaisingProperty())
        self.assertEqual(result, {"@type": __name__ + ".RaisingProperty", "visible": 1})
        self.assertEqual(
            self.capture(Slotted()),
            {"@type": __name__ + ".Slotted", "a": 1, "__private": 2},
        )

    def test_lying_class_is_seen_as_what_it_is(self):
        result = self.capture(LyingClass())
        self.assertRegex(result, r"^<%s\.LyingClass object at 0x[0-9a-f]+>$" % __name__)

    def test_overridden_builtin_methods_never_run(self):
        self.assertEqual(self.capture(OverridingList([1, 2])), [1, 2])
        self.assertEqual(self.capture(OverridingDict(a=1)), {"a": 1})
        self.assertEqual(self.capture(OverridingStr("abc")), "abc")
        self.assertEqual(self.capture(collections.OrderedDict(b=2)), {"b": 2})
        self.assertEqual(self.capture(collections.defaultdict(int, c=3)), {"c": 3})

    def test_special_objects(self):
        self.assertEqual(self.capture(Color.RED), "Color.RED")
        self.assertEqual(self.capture(Level.HIGH), "Level.HIGH")
        self.assertEqual(self.capture(Point(1, 2)), {"@type": __name__ + ".Point", "x": 1, "y": 2})
        self.assertEqual(self.capture([Point(1, 2)]), ["<%s.Point len=2>" % __name__])
        self.assertEqual(self.capture(ValueError("bad")), "ValueError('bad')")
        self.assertEqual(self.capture(User), "<class '%s.User'>" % __name__)
        self.assertEqual(self.capture(decimal.Decimal("1.5")), "Decimal('1.5')")
        self.assertEqual(self.capture(datetime.date(2020, 1, 2)), "datetime.date(2020, 1, 2)")
        self.assertEqual(self.capture(len), "<built-in function len>")
        self.assertTrue(self.capture(sys).startswith("<module 'sys'"))
        self.assertEqual(self.capture(range(3)), "range(0, 3)")

    def test_object_without_own_repr_is_not_called(self):
        class Plain(object):
            pass

        result = self.capture([Plain()])
        self.assertRegex(result[0], r"^<.*Plain object at 0x[0-9a-f]+>$")

    def test_repr_is_not_called_by_default(self):
        for value in (RaisingRepr(), RecursiveRepr(), HugeRepr(), ExitingRepr()):
            self.assertRegex(self.capture(value), r"^<.*Repr object at 0x[0-9a-f]+>$")

    def test_fields_per_object(self):
        class Wide(object):
            def __init__(self):
                for index in range(50):
                    setattr(self, "f%d" % index, index)

        result = self.capture(Wide())
        self.assertEqual(len(result), 1 + 20 + 1)
        self.assertEqual(result["@more"], "<30 more of 50>")

    # -- redaction -----------------------------------------------------------

    def test_redaction_of_secret_names(self):
        result = self.capture(User(), depth=2)
        self.assertEqual(result["password"], REDACTED)
        self.assertEqual(result["profile"], {"api_key": REDACTED, "city": "Paris"})
        self.assertEqual(result["name"], "bob")
        headers = self.capture(
            {"Authorization": "Bearer x", "Cookie": "c", "X-Api-Key": "k", "ok": 1}
        )
        self.assertEqual(
            headers, {"Authorization": REDACTED, "Cookie": REDACTED, "X-Api-Key": REDACTED, "ok": 1}
        )
        for name in (
            "password",
            "PASSWD",
            "access_token",
            "client_secret",
            "set-cookie",
            "apiKey",
            "private_key",
        ):
            self.assertTrue(is_secret_name(name), name)
        for name in ("name", "author", "count", 3, None):
            self.assertFalse(is_secret_name(name), name)

    def test_redaction_can_be_disabled(self):
        self.assertEqual(self.capture({"password": "x"}, redact=False), {"password": "x"})

    def test_capture_call_and_fields(self):
        params, kwargs = self.capturer.capture_call(
            ("A-17", 3, {"x": 1}), {"token": "t", "mode": "fast"}, names=("order_id", "qty", "opts")
        )
        self.assertEqual(params, ["A-17", 3, {"x": 1}])
        self.assertEqual(kwargs, {"token": REDACTED, "mode": "fast"})
        params, _ = self.capturer.capture_call(("me", "hunter2"), None, names=("user", "password"))
        self.assertEqual(params, ["me", REDACTED])
        fields = self.capturer.capture_fields({"target": Slotted(), "returnObj": float("nan")})
        self.assertEqual(fields["returnObj"], "NaN")
        encodable(self, fields)

    def test_keyboard_interrupt_is_not_swallowed(self):
        class Interrupting(object):
            def __repr__(self):
                raise KeyboardInterrupt()

        with self.assertRaises(KeyboardInterrupt):
            Capturer(CaptureLimits(call_repr=True)).capture(Interrupting())

    def test_deep_target_stack_does_not_break_capture(self):
        limit = sys.getrecursionlimit()

        def dive(level):
            if level == 0:
                return self.capturer.capture({"a": [RecursiveRepr(), {"b": 1}]})
            return dive(level - 1)

        result = dive(max(0, limit - 60))
        encodable(self, result)


if __name__ == "__main__":
    unittest.main()
