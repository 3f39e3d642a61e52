"""Checks the pygate_ticker example (a native thread appending to a list) with the Python under test.

usage: python check_ticker.py DIR_WITH_THE_MODULE
Each case runs in a fresh interpreter process.
"""
import os
import subprocess
import sys

MODULE_DIR = sys.argv[1]


def run(code):
    env = dict(os.environ, PYTHONPATH=MODULE_DIR)
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)


def check(name, code, want_stdout, want_stderr=None):
    p = run(code)
    ok = (p.returncode == 0 and want_stdout in p.stdout
          and (want_stderr is None or want_stderr in p.stderr))
    print(f"{'ok' if ok else 'FAIL'} {name}: exit {p.returncode}")
    if not ok:
        print("stdout:", p.stdout, "stderr:", p.stderr, sep="\n")
    return ok


START_STOP = """
import time, pygate_ticker
numbers = []
pygate_ticker.start(numbers, 2)
time.sleep(0.3)
count = pygate_ticker.stop()
assert count == len(numbers) >= 10, (count, len(numbers))
assert numbers == list(range(count))
time.sleep(0.05)
assert len(numbers) == count        # really stopped
pygate_ticker.start(numbers, 1)     # and can start again
time.sleep(0.05)
assert pygate_ticker.stop() > 0
try:
    pygate_ticker.stop()
except RuntimeError:
    print("appended", count, "then stopped")
"""

# The interpreter exits while the thread runs: the thread must get the
# error and stop, and the process must exit 0.  The atexit handler
# registered before start() runs after pygate's hook (atexit is last in,
# first out), when entries are refused, and gives the thread time to see
# the refusal before the process ends.
EXIT_WHILE_RUNNING = """
import atexit, time, pygate_ticker
atexit.register(time.sleep, 0.1)
numbers = []
pygate_ticker.start(numbers, 1)
time.sleep(0.1)
print("leaving with", len(numbers) > 0)
"""

SYS_EXIT_WHILE_RUNNING = EXIT_WHILE_RUNNING + "import sys\nsys.exit(0)\n"

results = [
    check("start_stop", START_STOP, "then stopped"),
    check("exit_while_running", EXIT_WHILE_RUNNING, "leaving with True",
          "pygate_ticker: stopped after"),
    check("sys_exit_while_running", SYS_EXIT_WHILE_RUNNING,
          "leaving with True", "pygate_ticker: stopped after"),
]
sys.exit(0 if all(results) else 1)
