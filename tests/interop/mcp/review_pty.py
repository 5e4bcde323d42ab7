"""Drive `objectos review` through a real pseudo-terminal, as a reviewer would.

    review_pty.py OBJECTOS SERVER approve|reject TITLE

The reviewer's key comes from OBJECTOS_REVIEW_KEY. It picks the pending
action whose line shows TITLE's record (the first one listed), reads its diff,
and approves it, or rejects it with a reason typed at the prompt. It prints
the whole transcript; exit 0 when the dialogue went as a reviewer expects.
"""

import os
import sys

import pexpect

objectos, server, decision, needle = sys.argv[1:5]
env = dict(os.environ, TERM="xterm-256color", NO_COLOR="1")
child = pexpect.spawn(
    objectos,
    ["review", "--server", server],
    env=env,
    encoding="utf-8",
    timeout=30,
    dimensions=(50, 200),
)
transcript = []
child.logfile_read = type("T", (), {"write": lambda self, s: transcript.append(s), "flush": lambda self: None})()

UP = "\x1b[A"
try:
    child.expect("Pending actions")
    # The first listed action (the default), then its diff.
    child.send("\r")
    child.expect(needle)
    child.expect("Decide")
    if decision == "approve":
        # approve / reject / skip, "skip" preselected.
        child.send(UP + UP + "\r")
        child.expect("applied")
    else:
        child.send(UP + "\r")
        child.expect("Why reject it")
        child.send("wrong customer\r")
        child.expect("rejected")
    # Back to the list: nothing left, or quit.
    index = child.expect(["nothing is waiting for review", "Pending actions"])
    if index == 1:
        child.send(UP + "\r")
    child.expect(pexpect.EOF)
    child.close()
    ok = child.exitstatus == 0
except (pexpect.TIMEOUT, pexpect.EOF) as e:
    ok = False
    transcript.append("\n[review_pty: " + type(e).__name__ + "]\n")
sys.stdout.write("".join(transcript))
sys.exit(0 if ok else 1)
