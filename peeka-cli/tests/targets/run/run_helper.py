"""Imported at start-up by run_app.py, which calls `parse` once."""


def parse(text):
    key, value = text.split("=")
    return {key: int(value)}


DEFAULTS = parse("x=2")
