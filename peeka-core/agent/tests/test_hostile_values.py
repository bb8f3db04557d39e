"""Hostile values must not stall the application (issue 15, part 3).

Capture runs on the application's thread for ``AtEnter`` rows, inside the
call: by default it runs none of the values' code (no ``__repr__``,
``__str__``, property, ``__getattr__``, ``__len__``, ``__iter__``,
``__eq__``, ``__hash__``..., of the value, its class or its metaclass). The
``call_repr`` option brings the guarded ``repr()`` back, and with it the
cost.

Every hostile method here records its call in :data:`TRIPS` (and then
behaves), so a test sees any call, even one whose result capture hides.
"""

import dataclasses
import datetime
import decimal
import enum
import re
import sys
import time
import types
import unittest

from peeka_agent.capture import CaptureLimits, Capturer, _exception_text
from peeka_agent.expr import compile_condition, make_context
from tests import probe_targets as targets
from tests.test_probes import P, ProbeTestCase

TRIPS = []
SLEEP = 1.0
#: What the watched call may take with a sleeping __repr__ (it takes SLEEP
#: if the __repr__ runs): generous, for a loaded machine.
CALL_BOUND = 0.2


def trip(what):
    TRIPS.append(what)


class SleepingRepr(object):
    """A field, and a ``__repr__`` that sleeps (the issue's 2 s, here 1 s)."""

    def __init__(self, sleep=SLEEP):
        self.sku = "plum"
        self.sleep = sleep

    def __repr__(self):
        trip("SleepingRepr.__repr__")
        time.sleep(self.sleep)
        return "SleepingRepr!"


class CountingRecursiveRepr(object):
    """A ``__repr__`` that counts its calls and recurses until RecursionError."""

    calls = 0

    def __repr__(self):
        CountingRecursiveRepr.calls += 1
        return repr(self)


class Tripwire(object):
    """Every hook capture could reach by accident records its call."""

    def __init__(self):
        self.a = 1

    def __repr__(self):
        trip("__repr__")
        return "Tripwire!"

    def __str__(self):
        trip("__str__")
        return "tripwire"

    def __getattribute__(self, name):
        trip("__getattribute__ " + name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name):
        trip("__getattr__ " + name)
        raise AttributeError(name)

    def __len__(self):
        trip("__len__")
        return 1

    def __iter__(self):
        trip("__iter__")
        return iter(())

    def __eq__(self, other):
        trip("__eq__")
        return False

    def __hash__(self):
        trip("__hash__")
        return 1

    def __bool__(self):
        trip("__bool__")
        return True

    @property
    def computed(self):
        trip("property")
        return 2

    def method(self):
        return 3


class Fieldless(object):
    """No field to expand: capture shows it as text."""

    __slots__ = ()

    def __repr__(self):
        trip("Fieldless.__repr__")
        return "Fieldless!"

    def __str__(self):
        trip("Fieldless.__str__")
        return "fieldless"


class TrippingDict(dict):
    def __repr__(self):
        trip("dict.__repr__")
        return "{}"

    def __iter__(self):
        trip("dict.__iter__")
        return iter(())

    def __len__(self):
        trip("dict.__len__")
        return 0

    def items(self):
        trip("dict.items")
        return []

    def keys(self):
        trip("dict.keys")
        return []

    def __getitem__(self, key):
        trip("dict.__getitem__")
        raise KeyError(key)


class TrippingList(list):
    def __repr__(self):
        trip("list.__repr__")
        return "[]"

    def __iter__(self):
        trip("list.__iter__")
        return iter(())

    def __len__(self):
        trip("list.__len__")
        return 0

    def __getitem__(self, index):
        trip("list.__getitem__")
        return None


class TrippingStr(str):
    def __repr__(self):
        trip("str.__repr__")
        return "'x'"

    def __str__(self):
        trip("str.__str__")
        return "x"

    def __hash__(self):
        trip("str.__hash__")
        return 1

    def __eq__(self, other):
        trip("str.__eq__")
        return False

    def __len__(self):
        trip("str.__len__")
        return 0

    def __getitem__(self, index):
        trip("str.__getitem__")
        return ""

    def lower(self):
        trip("str.lower")
        return "x"


class TrippingInt(int):
    def __repr__(self):
        trip("int.__repr__")
        return "0"

    def __index__(self):
        trip("int.__index__")
        return 0

    def __hash__(self):
        trip("int.__hash__")
        return 0

    def __eq__(self, other):
        trip("int.__eq__")
        return False


class TrippingComplex(complex):
    def __repr__(self):
        trip("complex.__repr__")
        return "0j"


class Color(enum.Enum):
    RED = 1

    def __repr__(self):
        trip("Color.__repr__")
        return "<red>"

    def __str__(self):
        trip("Color.__str__")
        return "red"

    def __hash__(self):
        trip("Color.__hash__")
        return 1


class Permission(enum.IntFlag):
    READ = 1
    WRITE = 2


@dataclasses.dataclass(repr=False)
class Order(object):
    id: int
    sku: str

    def __repr__(self):
        trip("Order.__repr__")
        return "Order!"


class Failure(Exception):
    def __str__(self):
        trip("Failure.__str__")
        return "failure"

    def __repr__(self):
        trip("Failure.__repr__")
        return "Failure!"


class Meta(type):
    def __repr__(cls):
        trip("Meta.__repr__")
        return "Meta!"

    def __eq__(cls, other):
        trip("Meta.__eq__")
        return False

    # __eq__ alone makes the classes unhashable; a __hash__ that trips instead:
    def __hash__(cls):
        trip("Meta.__hash__")
        return 1

    def __getattribute__(cls, name):
        trip("Meta.__getattribute__ " + name)
        return type.__getattribute__(cls, name)


class Metered(object, metaclass=Meta):
    def __init__(self):
        self.value = 5

    def __repr__(self):
        trip("Metered.__repr__")
        return "Metered!"


class EqualOnlyMeta(type):
    """Its classes are unhashable (``__eq__`` without ``__hash__``)."""

    def __eq__(cls, other):
        trip("EqualOnlyMeta.__eq__")
        return cls is other


class Unhashable(object, metaclass=EqualOnlyMeta):
    __slots__ = ("x",)

    def __init__(self):
        self.x = 1


class TrippingModule(types.ModuleType):
    def __repr__(self):
        trip("module.__repr__")
        return "<module!>"

    def __getattr__(self, name):
        trip("module.__getattr__ " + name)
        raise AttributeError(name)


class TrippingZone(datetime.tzinfo):
    def __repr__(self):
        trip("tzinfo.__repr__")
        return "Zone!"

    def utcoffset(self, moment):
        trip("tzinfo.utcoffset")
        return datetime.timedelta(0)


ADDRESS = r"<%s\.%s object at 0x[0-9a-f]+>"


def address(name):
    return ADDRESS % (re.escape(__name__), name)


class CaptureRunsNoUserCodeTests(unittest.TestCase):
    """``Capturer()`` (the default: ``call_repr`` false) against each hostile shape."""

    def setUp(self):
        del TRIPS[:]
        self.capturer = Capturer()

    def tearDown(self):
        self.assertEqual(TRIPS, [], "capture ran the target's code")

    def capture(self, value, **limits):
        capturer = Capturer(CaptureLimits(**limits)) if limits else self.capturer
        return capturer.capture(value)

    def test_the_default_is_not_to_call_repr(self):
        self.assertFalse(CaptureLimits().call_repr)
        self.assertFalse(CaptureLimits().as_dict()["call_repr"])

    def test_objects_beyond_the_depth_or_without_fields_are_not_shown_by_repr(self):
        self.assertRegex(self.capture([SleepingRepr()])[0], "^%s$" % address("SleepingRepr"))
        self.assertRegex(self.capture(Fieldless()), "^%s$" % address("Fieldless"))
        self.assertEqual(
            self.capture(SleepingRepr()),
            {"@type": __name__ + ".SleepingRepr", "sku": "plum", "sleep": SLEEP},
        )
        self.assertRegex(self.capture({"k": Fieldless()})["k"], address("Fieldless"))
        before = CountingRecursiveRepr.calls
        self.assertRegex(self.capture([CountingRecursiveRepr()])[0], "CountingRecursiveRepr")
        self.assertEqual(CountingRecursiveRepr.calls, before)

    def test_an_object_is_read_from_its_fields_only(self):
        self.assertEqual(self.capture(Tripwire()), {"@type": __name__ + ".Tripwire", "a": 1})
        self.assertRegex(self.capture([Tripwire()])[0], address("Tripwire"))
        bound = types.MethodType(Tripwire.method, Tripwire())
        self.assertRegex(self.capture(bound), r"^<bound method Tripwire\.method of ")

    def test_subclasses_of_builtins_are_read_with_the_builtins_methods(self):
        self.assertEqual(self.capture(TrippingDict(a=1)), {"a": 1})
        self.assertEqual(self.capture(TrippingList([1, 2])), [1, 2])
        self.assertEqual(self.capture(TrippingStr("abc")), "abc")
        self.assertEqual(self.capture(TrippingInt(7)), 7)
        self.assertEqual(self.capture(TrippingComplex(1, 2)), "(1+2j)")
        self.assertEqual(
            self.capture([TrippingDict(a=1), TrippingList([1])]),
            ["<%s.TrippingDict len=1>" % __name__, "<%s.TrippingList len=1>" % __name__],
        )

    def test_keys_are_never_hashed_compared_or_shown_by_their_own_methods(self):
        keyed = {TrippingStr("name"): 1, TrippingInt(3): 2, Color.RED: 3, Fieldless(): 4}
        arguments = {TrippingStr("token"): "t", "x": 1}
        del TRIPS[:]  # building the dicts hashed the keys
        result = self.capture(keyed)
        self.assertEqual(result["name"], 1)
        self.assertEqual(result["3"], 2)
        self.assertEqual(result["Color.RED"], 3)
        self.assertEqual(len(result), 4)
        params, kwargs = self.capturer.capture_call((), arguments)
        self.assertEqual(kwargs, {"token": "<redacted>", "x": 1})

    def test_enums_dataclasses_and_exceptions(self):
        self.assertEqual(self.capture(Color.RED), "Color.RED")
        self.assertEqual(self.capture([Color.RED]), ["Color.RED"])
        combined = self.capture(Permission.READ | Permission.WRITE)
        self.assertIn(combined, ("Permission(3)", "Permission.READ|WRITE"))
        self.assertEqual(
            self.capture(Order(1, "fig")), {"@type": __name__ + ".Order", "id": 1, "sku": "fig"}
        )
        self.assertRegex(self.capture([Order(1, "fig")])[0], address("Order"))
        failure = Failure("bad id", Tripwire())
        shown = self.capture(failure)
        self.assertRegex(shown, r"^Failure\('bad id', %s\)$" % address("Tripwire"))
        self.assertRegex(_exception_text(failure), r"^%s\.Failure: \('bad id', " % __name__)
        self.assertEqual(_exception_text(Failure(TrippingStr("why"))), __name__ + ".Failure: why")
        self.assertEqual(_exception_text(Failure()), __name__ + ".Failure")

    def test_classes_with_a_hostile_metaclass(self):
        self.assertEqual(self.capture(Metered), "<class '%s.Metered'>" % __name__)
        self.assertEqual(self.capture(Metered()), {"@type": __name__ + ".Metered", "value": 5})
        self.assertRegex(self.capture([Metered()])[0], address("Metered"))
        self.assertEqual(self.capture(Unhashable()), {"@type": __name__ + ".Unhashable", "x": 1})

    def test_modules_methods_slices_and_dates(self):
        module = TrippingModule("tripping")
        self.assertEqual(self.capture(module), "<module 'tripping'>")
        self.assertRegex(self.capture(sys), r"^<module 'sys'")
        self.assertRegex(
            self.capture(slice(1, Tripwire())), r"^slice\(1, %s, None\)$" % address("Tripwire")
        )
        self.assertEqual(self.capture(range(0, 9, 2)), "range(0, 9, 2)")
        self.assertEqual(self.capture(decimal.Decimal("1.5")), "Decimal('1.5')")
        self.assertEqual(
            self.capture(datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.timezone.utc)),
            "datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.timezone.utc)",
        )
        self.assertRegex(
            self.capture(datetime.datetime(2024, 5, 6, tzinfo=TrippingZone())),
            r"^datetime\.datetime\(2024, 5, 6, 0, 0, tzinfo=%s\)$" % address("TrippingZone"),
        )

    def test_the_opt_in_calls_repr_guarded(self):
        opted = Capturer(CaptureLimits(call_repr=True))
        self.assertEqual(opted.capture([Fieldless()]), ["Fieldless!"])
        before = CountingRecursiveRepr.calls
        recursing = opted.capture([CountingRecursiveRepr()])
        self.assertEqual(recursing, ["<repr failed: RecursionError>"])
        self.assertGreater(CountingRecursiveRepr.calls, before)
        self.assertEqual(TRIPS, ["Fieldless.__repr__"])
        del TRIPS[:]


class RaisingEquality(object):
    """``==`` raises an exception whose ``__str__`` must not run either."""

    def __eq__(self, other):
        raise Failure("no comparison")

    __hash__ = object.__hash__


class ConditionSideEffectTests(unittest.TestCase):
    """What a condition runs of the target's code: only what docs/commands.md lists."""

    def setUp(self):
        del TRIPS[:]

    def evaluate(self, source, *params):
        condition = compile_condition(source)
        return condition.test(make_context(list(params))), condition

    def test_comparisons_and_truth_tests_run_the_operands_methods_by_design(self):
        value = Tripwire()
        self.assertFalse(self.evaluate("params[0] == 1", value)[0])
        self.assertEqual(TRIPS, ["__eq__"])
        del TRIPS[:]
        self.assertFalse(self.evaluate("not params[0]", value)[0])
        self.assertEqual(TRIPS, ["__bool__"])
        del TRIPS[:]
        self.assertTrue(self.evaluate("params[0] in {params[0]}", value)[0])
        self.assertEqual(TRIPS, ["__hash__", "__hash__"])
        del TRIPS[:]

    def test_nothing_else_runs_the_target_s_code(self):
        value = Tripwire()
        for source in (
            "params[0] is None",
            "params[0].a == 1",
            "isinstance(params[0], 'Tripwire')",
            "isinstance(params[0], str)",
            "params[1].lower() == 'x'",
            "params[0].lower() == 'x'",
            "len(params[1]) == 1",
            "str(params[2]) == '3'",
            "params[0].computed == 2",
        ):
            self.evaluate(source, value, TrippingStr("X"), TrippingInt(3))
            self.assertEqual(TRIPS, [], source)

    def test_a_failure_is_described_without_the_exception_s_str(self):
        result, condition = self.evaluate("params[0] == 1", RaisingEquality())
        self.assertFalse(result)
        self.assertIn("Failure: no comparison", condition.last_error)
        self.assertEqual(TRIPS, [])


class HostileValuesUnderWatchTests(ProbeTestCase):
    """A real watch, in process: the application's own call, timed."""

    def setUp(self):
        ProbeTestCase.setUp(self)
        del TRIPS[:]

    def timed_echo(self, value):
        started = time.perf_counter()
        targets.echo(value)
        return time.perf_counter() - started

    def test_a_sleeping_repr_does_not_delay_the_watched_call(self):
        client = self.client()
        stream, data = self.start(
            client, "watch", pattern=P + "echo", before=True, finish=True, times=4
        )
        nested = self.timed_echo([SleepingRepr()])
        fieldless = self.timed_echo(Fieldless())
        rows = self.observations(client, 4)
        self.end_of(client, stream)
        self.assertLess(nested, CALL_BOUND, "the call waited for __repr__")
        self.assertLess(fieldless, CALL_BOUND, "the call waited for __repr__")
        self.assertFalse(data["limits"]["call_repr"])
        self.assertEqual([row["location"] for row in rows], ["AtEnter", "AtExit"] * 2)
        self.assertRegex(rows[0]["params"][0][0], address("SleepingRepr"))
        self.assertRegex(rows[1]["returnObj"][0], address("SleepingRepr"))
        self.assertRegex(rows[2]["params"][0], address("Fieldless"))
        # Neither the application's thread nor the writer's ran any of it.
        self.assertEqual(TRIPS, [])

    def test_a_recursing_repr_runs_zero_times_by_default_and_on_request(self):
        client = self.client()
        value = [CountingRecursiveRepr()]
        before = CountingRecursiveRepr.calls
        stream, _ = self.start(client, "watch", pattern=P + "echo", before=True, times=1)
        targets.echo(value)
        (row,) = self.observations(client, 1)
        self.end_of(client, stream)
        self.assertEqual(CountingRecursiveRepr.calls, before)
        self.assertRegex(row["params"][0][0], address("CountingRecursiveRepr"))

        stream, data = self.start(
            client, "watch", pattern=P + "echo", before=True, times=1, call_repr=True
        )
        self.assertTrue(data["limits"]["call_repr"])
        targets.echo(value)
        (row,) = self.observations(client, 1)
        self.end_of(client, stream)
        self.assertGreater(CountingRecursiveRepr.calls, before)
        self.assertEqual(row["params"][0][0], "<repr failed: RecursionError>")

    def test_the_opt_in_runs_repr_on_the_applications_thread(self):
        client = self.client()
        stream, _ = self.start(
            client, "watch", pattern=P + "echo", before=True, times=1, call_repr=True
        )
        took = self.timed_echo([SleepingRepr(0.3)])
        (row,) = self.observations(client, 1)
        self.end_of(client, stream)
        self.assertEqual(row["params"][0], ["SleepingRepr!"])
        self.assertGreaterEqual(took, 0.3)
        self.assertEqual(TRIPS, ["SleepingRepr.__repr__"])
        del TRIPS[:]

    def test_stack_params_follow_the_same_rule(self):
        client = self.client()
        for call_repr, expected in ((False, address("Fieldless")), (True, "^Fieldless!$")):
            stream, data = self.start(
                client, "stack", pattern=P + "echo", times=1, call_repr=call_repr
            )
            self.assertEqual(data["call_repr"], call_repr)
            targets.echo(Fieldless())
            (row,) = self.observations(client, 1)
            self.end_of(client, stream)
            self.assertRegex(row["params"][0], expected)
        self.assertEqual(TRIPS, ["Fieldless.__repr__"])
        del TRIPS[:]

    def test_call_repr_must_be_a_boolean(self):
        client = self.client()
        for command in ("watch", "stack"):
            error = self.refused(client, command, pattern=P + "echo", call_repr="yes")
            self.assertIn("call_repr", error["message"])


if __name__ == "__main__":
    unittest.main()
