"""Runs the agent's tests with the interpreter that runs this script.

    python run_tests.py            # all tests
    python run_tests.py -v         # verbose
    python run_tests.py test_expr  # one module (name under tests/)

Standard library only, like the agent; works on CPython 3.8 to 3.15. The
exit status is 0 when every test passed. Tests that need root (peer
credential checks across uids) are skipped, loudly, when not run as root.
"""

import os
import platform
import sys
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
# The sources are embedded in the Rust crate: leave no __pycache__ beside them.
sys.dont_write_bytecode = True


def main(argv):
    verbosity = 2 if "-v" in argv else 1
    names = [arg for arg in argv if not arg.startswith("-")]
    sys.path.insert(0, HERE)
    # Warnings the agent could cause in a target must fail the tests.
    warnings.simplefilter("error")
    loader = unittest.TestLoader()
    if names:
        suite = unittest.TestSuite(loader.loadTestsFromName("tests." + name) for name in names)
    else:
        suite = loader.discover(os.path.join(HERE, "tests"), top_level_dir=HERE)
    print(
        "peeka agent tests on %s %s (%s)"
        % (platform.python_implementation(), platform.python_version(), sys.executable),
        file=sys.stderr,
        flush=True,
    )
    result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
