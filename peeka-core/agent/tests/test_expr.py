"""expr: the safe expression language - values, refusals with positions, caps, failures."""

import collections
import threading
import time
import types
import unittest

from peeka_agent.expr import (
    CONTEXT_NAMES,
    EvaluationError,
    ExpressionError,
    compile_condition,
    compile_expression,
    make_context,
)

_side_effects = []


class Account(object):
    kind = "premium"  # a plain class attribute

    def __init__(self):
        self.id = 7
        self.owner = Owner()
        self._cache = {"hits": 3}
        self.tags = ["a", "b"]

    @property
    def balance(self):
        _side_effects.append("property ran")
        return 100

    def close(self):
        _side_effects.append("method ran")


class Owner(object):
    __slots__ = ("name", "email", "unset")

    def __init__(self):
        self.name = "Ada"
        self.email = "ada@example.org"


class Dynamic(object):
    def __getattr__(self, name):
        _side_effects.append("__getattr__ ran")
        return 1


class Equals(object):
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


def context(**overrides):
    values = {
        "params": ["order-1", 3, {"k": 1}],
        "kwargs": {"user": "ada", "limit": 10},
        "target": Account(),
        "returnObj": {"status": "ok", "items": [1, 2, 3]},
        "throwExp": None,
        "cost": 120.5,
    }
    values.update(overrides)
    return make_context(**values)


def evaluate(source, ctx=None):
    return compile_expression(source).evaluate(ctx if ctx is not None else context())


class ValidExpressionTests(unittest.TestCase):
    def test_values(self):
        cases = [
            ("cost > 100", True),
            ("cost < 100", False),
            ("params[0] == 'order-1'", True),
            ("args[1] * 2", 6),
            ("kwargs['user']", "ada"),
            ("kwargs.get('missing')", None),
            ("kwargs.get('missing', 5)", 5),
            ("target.id", 7),
            ("target.owner.name", "Ada"),
            ("target._cache['hits']", 3),
            ("target.kind", "premium"),
            ("returnObj['items'][-1]", 3),
            ("returnObj['items'][0:2]", [1, 2]),
            ("returnObj['items'][::-1]", [3, 2, 1]),
            ("len(params)", 3),
            ("len(returnObj['items']) >= 3 and cost < 200", True),
            ("throwExp is None", True),
            ("throwExp is not None or cost > 1", True),
            ("not params", False),
            ("'user' in kwargs", True),
            ("'x' not in params[0]", True),
            ("2 in returnObj['items']", True),
            ("1 < cost < 200", True),
            ("1 < cost < 100", False),
            ("-params[1] + 10 // 3 % 2 ** 3", 0),
            ("7 / 2", 3.5),
            ("abs(-3)", 3),
            ("min(3, 1, 2)", 1),
            ("max(returnObj['items'])", 3),
            ("str(cost)", "120.5"),
            ("int('42') + float('0.5')", 42.5),
            ("bool(params)", True),
            ("round(cost)", 120),
            ("round(2.567, 2)", 2.57),
            ("params[0].startswith('order')", True),
            ("params[0].upper().endswith('-1')", True),
            ("'  x '.strip() == 'x'", True),
            ("'123'.isdigit()", True),
            ("isinstance(params[1], int)", True),
            ("isinstance(params[1], (str, float))", False),
            ("isinstance(target, 'Account')", True),
            ("isinstance(target, '%s.Account')" % __name__, True),
            ("isinstance(target, 'object')", True),
            ("isinstance(returnObj, dict)", True),
            ("(1, 'a') + (2,)", (1, "a", 2)),
            ("[1] * 3", [1, 1, 1]),
            ("{'a': 1, 'b': [1, 2]}['b'][1]", 2),
            ("{1, 2} == {2, 1}", True),
            ("b'ab' + b'c'", b"abc"),
            ("1 if cost > 100 else 2", 1),
            ("True and None", None),
            ("0 or 'default'", "default"),
            ("2 ** 10", 1024),
            ("2 ** -1", 0.5),
            ("(1 +\n 2)", 3),
        ]
        for source, expected in cases:
            with self.subTest(source=source):
                self.assertEqual(evaluate(source), expected)

    def test_uses(self):
        self.assertEqual(compile_expression("cost > 1 and params[0]").uses, {"cost", "params"})
        self.assertEqual(compile_expression("args[0]").uses, {"params"})
        self.assertEqual(compile_expression("1 + 1").uses, frozenset())

    def test_modules_and_classes(self):
        module = types.ModuleType("fake")
        module.LIMIT = 5
        self.assertEqual(evaluate("target.LIMIT", context(target=module)), 5)
        self.assertEqual(evaluate("target.kind", context(target=Account)), "premium")
        with self.assertRaises(EvaluationError) as caught:
            evaluate("target.close", context(target=Account))
        self.assertIn("method", caught.exception.message)

    def test_exceptions(self):
        error = KeyError("missing")
        self.assertEqual(evaluate("throwExp.args[0]", context(throwExp=error)), "missing")
        self.assertEqual(evaluate("str(throwExp)", context(throwExp=ValueError("bad"))), "bad")
        self.assertTrue(evaluate("isinstance(throwExp, 'KeyError')", context(throwExp=error)))
        self.assertTrue(evaluate("isinstance(throwExp, Exception)", context(throwExp=error)))


class RefusedAtCompileTimeTests(unittest.TestCase):
    def assertRefused(self, source, fragment, column=None, line=1):
        with self.assertRaises(ExpressionError) as caught:
            compile_expression(source)
        error = caught.exception
        self.assertIn(fragment, error.message)
        if column is not None:
            self.assertEqual((error.line, error.column), (line, column), str(error))
        self.assertIn("line", str(error))
        return error

    def test_forbidden_constructs(self):
        cases = [
            ("__import__('os')", "only these functions"),
            ("open('/etc/passwd')", "only these functions"),
            ("params.__class__", "`__`"),
            ("target.__dict__", "`__`"),
            ("__builtins__", "`__`"),
            ("lambda: 1", "lambda"),
            ("[x for x in params]", "comprehensions"),
            ("{k: 1 for k in params}", "comprehensions"),
            ("(x for x in params)", "generator"),
            ("(y := 1)", ":="),
            ("f'{params}'", "f-strings"),
            ("[*params]", "unpacking"),
            ("{**kwargs}", "unpacking"),
            ("len(*params)", "unpacking"),
            ("max(params, key=len)", "keyword"),
            ("params[0] & 1", "`&`"),
            ("cost | 1", "`|`"),
            ("~cost", "`~`"),
            ("cost << 2", "`<<`"),
            ("...", "`...`"),
            ("target.close()", "only these functions"),
            ("params.append(1)", "only these functions"),
            ("len", "function"),
            ("str", "function"),
            ("int", "function"),
            ("dict", "isinstance"),
            ("x", "unknown name `x`"),
            ("kwargs.get", "method"),
            ("isinstance(params, target)", "second argument"),
            ("len(params, kwargs)", "takes 1 argument"),
        ]
        for source, fragment in cases:
            with self.subTest(source=source):
                with self.assertRaises(ExpressionError) as caught:
                    compile_expression(source)
                if fragment is not None:
                    self.assertIn(fragment, caught.exception.message)

    def test_positions(self):
        self.assertRefused("cost > 1 and bogus", "unknown name", column=14)
        self.assertRefused("params[0].__class__", "`__`", column=11)
        self.assertRefused("(cost > 1 and\n  open(1))", "only these functions", line=2, column=3)
        self.assertRefused("'\u00e9\u00e9' == x", "unknown name", column=9)
        self.assertRefused("cost >", "invalid syntax", column=7)
        self.assertRefused("(cost", "invalid syntax")
        error = self.assertRefused("cost > > 1", "invalid syntax", column=8)
        self.assertEqual(error.caret(), "cost > > 1\n       ^")

    def test_literals_that_would_print_warnings(self):
        self.assertRefused(r"params[0] == '\d'", "invalid escape", column=15)
        self.assertRefused(r"params[0] == b'\N{DASH}'", "invalid escape")
        self.assertRefused(r"params[0] == '\777'", "octal")
        self.assertRefused("1if cost else 2", "space", column=2)
        self.assertRefused("cost>1or 1", "space")
        self.assertEqual(evaluate(r"'\x41\n\t\\' == 'A\n\t\\'"), True)
        self.assertEqual(evaluate(r"r'\d' == '\\d'"), True)
        self.assertEqual(evaluate(r"'\N{BULLET}\u00e9\101'"), "\u2022\u00e9A")

    def test_constant_parts_are_checked_at_compile_time(self):
        self.assertRefused("cost > 10 ** 10 ** 10", "too large", column=8)
        self.assertRefused("params[0] == 'x' * 10 ** 9", "too large")
        self.assertRefused("cost > 1 / 0", "ZeroDivisionError", column=8)
        self.assertRefused("[1] * 100000", "too large")
        self.assertRefused("round(1.5, 10 ** 6)", "300")
        self.assertRefused("'%s' % 1", "numbers")
        self.assertRefused("(1 << 5)", "`<<`")

    def test_size_limits(self):
        self.assertRefused("cost + " * 500 + "1", "longer than")
        self.assertRefused("[" + ",".join(["1"] * 450) + "]", "too long")
        self.assertRefused("[" * 60 + "cost" + "]" * 60, "nest")
        self.assertRefused("-" * 100 + "cost", "nest")
        self.assertRefused("", "empty")
        self.assertRefused("cost\0", "NUL")


class RuntimeTests(unittest.TestCase):
    def setUp(self):
        del _side_effects[:]

    def assertFails(self, source, fragment, ctx=None):
        with self.assertRaises(EvaluationError) as caught:
            evaluate(source, ctx)
        self.assertIn(fragment, caught.exception.message)
        self.assertIsNotNone(caught.exception.offset)
        return caught.exception

    def test_no_user_code_for_attributes(self):
        self.assertFails("target.balance", "property")
        self.assertFails("target.close", "method")
        self.assertFails("target.missing", "no attribute")
        self.assertFails("target.x", "__getattr__ is not run", context(target=Dynamic()))
        self.assertFails("target.owner.unset", "not set")
        self.assertFails("kwargs.user", "[")
        self.assertEqual(_side_effects, [])

    def test_defaultdict_is_not_modified(self):
        counts = collections.defaultdict(int)
        ctx = context(kwargs=counts)
        self.assertFails("kwargs['new']", "KeyError", ctx)
        self.assertEqual(evaluate("kwargs.get('new')", ctx), None)
        self.assertEqual(dict(counts), {})

    def test_operand_types_are_checked(self):
        self.assertFails("target + 1", "only computed on numbers")
        self.assertFails("params[2] * 2", "numbers")
        self.assertFails("'%s' % params", "numbers")
        self.assertFails("target[0]", "indexing works on")
        self.assertFails("1 in target", "`in` works on")
        self.assertFails("len(target)", "len() works on")
        self.assertFails("str(target)", "str() works on")
        self.assertFails("params[0].startswith(1)", "strings")
        self.assertFails("params[1].lower()", "string method")
        self.assertFails("params['a']", "integer")
        self.assertFails("params[5]", "IndexError")
        self.assertFails("cost / (params[1] - 3)", "ZeroDivisionError")

    def test_caps_at_run_time(self):
        big = 2**4000
        self.assertFails("params[0] ** 2", "too large", context(params=[big]))
        self.assertFails("params[0] * params[0]", "too large", context(params=[big]))
        self.assertFails("params[0] * 100000", "too large", context(params=["ab"]))
        self.assertFails("params[0] + params[0]", "too large", context(params=[[0] * 6000]))
        self.assertFails("str(params[0] ** 1)", "too large", context(params=[2**5000]))
        self.assertFails("int(params[0])", "longer than", context(params=["1" * 5000]))
        self.assertFails("max(params[0])", "limited to", context(params=[list(range(200000))]))
        started = time.perf_counter()
        for source in ("params[0] ** params[1]", "params[1] ** params[1]"):
            with self.assertRaises(EvaluationError):
                evaluate(source, context(params=[10, 10**10]))
        self.assertLess(time.perf_counter() - started, 0.5)

    def test_comparisons_may_use_the_operands_methods(self):
        self.assertTrue(evaluate("params[0] == 5", context(params=[Equals()])))

    def test_subclasses_of_builtins_use_builtin_methods(self):
        class Strange(list):
            def __getitem__(self, index):
                _side_effects.append("__getitem__ ran")
                return "strange"

            def __len__(self):
                _side_effects.append("__len__ ran")
                return 99

            def __contains__(self, item):
                _side_effects.append("__contains__ ran")
                return True

        ctx = context(params=Strange([1, 2]))
        self.assertEqual(evaluate("params[0]", ctx), 1)
        self.assertEqual(evaluate("len(params)", ctx), 2)
        self.assertEqual(evaluate("5 in params", ctx), False)
        self.assertEqual(_side_effects, [])

    def test_error_offsets_point_at_the_failing_part(self):
        error = self.assertFails("cost > 1 and target.balance", "property")
        self.assertEqual(error.offset, 20)
        self.assertIn("at 20", str(error))


class ConditionTests(unittest.TestCase):
    def test_true_false_and_failures(self):
        condition = compile_condition("params[0] / params[1] > 1")
        self.assertTrue(condition.test(context(params=[4, 2])))
        self.assertFalse(condition.test(context(params=[1, 2])))
        self.assertFalse(condition.test(context(params=[1, 0])))
        self.assertFalse(condition.test(context(params=["a", 1])))
        self.assertEqual(condition.failures, 2)
        self.assertIn("at 0", condition.last_error)
        self.assertEqual(condition.take_failures(), (2, condition.last_error))
        self.assertEqual(condition.take_failures()[0], 0)

    def test_truthiness_failure_is_counted(self):
        class Ambiguous(object):
            def __bool__(self):
                raise ValueError("ambiguous truth")

        condition = compile_condition("params[0]")
        self.assertFalse(condition.test(context(params=[Ambiguous()])))
        self.assertEqual(condition.failures, 1)
        self.assertIn("ambiguous", condition.last_error)

    def test_failures_are_counted_exactly_across_threads(self):
        condition = compile_condition("1 / params[0]")
        bad = context(params=[0])

        def hammer():
            for _ in range(2000):
                condition.test(bad)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(condition.failures, 8000)

    def test_invalid_condition_is_reported_before_use(self):
        with self.assertRaises(ExpressionError):
            compile_condition("cost >")

    def test_context_names(self):
        self.assertEqual(
            CONTEXT_NAMES, ("params", "kwargs", "target", "returnObj", "throwExp", "cost")
        )


if __name__ == "__main__":
    unittest.main()


class InlineConditionTests(unittest.TestCase):
    """condition_inline: the inlined source means what expr evaluates, and only the common shapes."""

    VALUES = {"target": "t", "returnObj": "r", "throwExp": "x", "cost": "c"}

    def inline(self, source):
        from peeka_agent.condition_inline import inline_condition

        compile_condition(source)  # only accepted expressions are ever inlined
        return inline_condition(source, self.VALUES, lambda i: "p[%d]" % i if i >= 0 else None)

    def test_inlined_source_agrees_with_expr(self):
        expressions = [
            "cost > 100",
            "params[0] == 'x'",
            "params[1] != 2 and not returnObj",
            "1 < params[0] <= 5 or throwExp is not None",
            "returnObj is None",
            "params[0] == -3",
            "params[0] >= 2.5",
            "params[0] == b'raw'",
            "target is None or cost < 0.5",
            "True",
            "params[3] == 1",
            "params[0] < 'a'",
            "not (params[0] == 1 or params[1] == 2)",
        ]
        contexts = [
            make_context(["x", 2], {}, None, None, None, 120.5),
            make_context([3, 1], {}, object(), 0, ValueError("v"), 0.1),
            make_context([-3, 2], {}, None, "r", None, 99.0),
            make_context([b"raw", None], {}, None, [], None, 0.0),
            make_context([2.5], {}, None, None, None, 1e9),
        ]
        for source in expressions:
            inlined = self.inline(source)
            self.assertIsNotNone(inlined, source)
            function = eval("lambda p, t, r, x, c: %s" % inlined, {"__builtins__": {}})
            condition = compile_condition(source)
            for context in contexts:
                params, _kwargs, target, result, exc, cost = context
                try:
                    got = bool(function(tuple(params), target, result, exc, cost))
                except Exception:
                    got = False
                self.assertEqual(got, condition.test(context), (source, context))

    def test_other_shapes_are_left_to_expr(self):
        for source in (
            "target.id == 7",
            "params[0] in (1, 2)",
            "len(params) == 2",
            "kwargs['a'] == 1",
            "params[-1] == 1",
            "params == [1]",
            "cost * 2 > 1",
            "params[0] == 1e400",
            "params[0] == (1, 2)",
            "params[True] == 1",
            "isinstance(returnObj, int)",
            "'a' if cost else 'b'",
        ):
            self.assertIsNone(self.inline(source), source)

    def test_a_failure_counted_elsewhere_is_counted_and_kept(self):
        condition = compile_condition("params[0] < 'a'")
        try:
            1 < "a"
        except TypeError as exc:
            self.assertIs(condition.failed(exc), False)
        self.assertEqual(condition.failures, 1)
        self.assertIn("<", condition.last_error)
        with self.assertRaises(KeyboardInterrupt):
            condition.failed(KeyboardInterrupt())
        self.assertEqual(condition.take_failures()[0], 1)
