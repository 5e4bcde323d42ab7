"""Run a command on a real pseudo-terminal and hold a scripted dialogue with it.

    dialogue.py STEPS_JSON COMMAND [ARG...]

STEPS_JSON is a JSON list of ["expect", TEXT] and ["send", TEXT] steps, taken in
order ("send" types TEXT followed by Enter). It prints everything the command
showed on the terminal, then a last line `[exit N]` with its exit status; it
exits 0 when every step was met (whatever the command's own exit status) and 1
when one was not.
"""

import json
import os
import sys

import pexpect

steps = json.loads(sys.argv[1])
command, args = sys.argv[2], sys.argv[3:]
env = dict(os.environ, TERM="xterm-256color", NO_COLOR="1")
child = pexpect.spawn(command, args, env=env, encoding="utf-8", timeout=30, dimensions=(50, 200))
transcript = []
child.logfile_read = type(
    "T", (), {"write": lambda self, s: transcript.append(s), "flush": lambda self: None}
)()
ok = True
try:
    for kind, text in steps:
        if kind == "expect":
            child.expect_exact(text)
        elif kind == "send":
            child.send(text + "\r")
        else:
            raise SystemExit(f"unknown step {kind!r}")
    child.expect(pexpect.EOF)
except (pexpect.TIMEOUT, pexpect.EOF) as e:
    ok = False
    transcript.append("\n[dialogue.py: " + type(e).__name__ + " at a step]\n")
child.close()
sys.stdout.write("".join(transcript))
sys.stdout.write(f"\n[exit {child.exitstatus}]\n")
sys.exit(0 if ok else 1)
