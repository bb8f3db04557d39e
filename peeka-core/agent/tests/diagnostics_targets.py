"""Functions with a known call tree, for the trace, thread and top tests."""

import json


def validate(order):
    return bool(order)


def price(item):
    return item * 2


def save(order):
    return len(order)


def order(items):
    validate(items)
    total = 0
    for item in items:
        total += price(item)
    save(items)
    return total


def failing_order(items):
    validate(items)
    raise ValueError("rejected")


def with_stdlib(items):
    text = json.dumps(items, default=price)
    return len(text) + len(items)


def deep(n):
    return 0 if n <= 0 else deep(n - 1) + 1


def burn(deadline_check):
    # CPU-bound until the check says stop.
    x = 0
    while not deadline_check():
        for i in range(2000):
            x += i
    return x


def generator():
    yield 1


ORIGINAL_CODES = {
    name: globals()[name].__code__
    for name in ("validate", "price", "save", "order", "failing_order", "with_stdlib", "deep")
}
