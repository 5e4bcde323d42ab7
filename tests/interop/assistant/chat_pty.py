"""Drive `objectos chat` through a real pseudo-terminal, as a user would.

    chat_pty.py OBJECTOS SERVER MESSAGE EXPECTED

The user's key comes from OBJECTOS_API_KEY. At the prompt it types MESSAGE,
waits for EXPECTED in the streamed answer and for the next prompt, then ends
the input (Ctrl-D). It prints the whole transcript; exit 0 when the dialogue
went as a user expects.
"""

import os
import sys

import pexpect

objectos, server, message, expected = sys.argv[1:5]
env = dict(os.environ, TERM="xterm-256color", NO_COLOR="1")
child = pexpect.spawn(
    objectos,
    ["chat", "--server", server],
    env=env,
    encoding="utf-8",
    timeout=30,
    dimensions=(50, 200),
)
transcript = []
child.logfile_read = type("T", (), {"write": lambda self, s: transcript.append(s), "flush": lambda self: None})()

try:
    child.expect_exact("you> ")
    child.sendline(message)
    child.expect_exact(expected)
    child.expect_exact("you> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    ok = child.exitstatus == 0
except pexpect.ExceptionPexpect as e:
    transcript.append(f"\n[driver] {type(e).__name__}: {e}\n")
    ok = False
print("".join(transcript))
sys.exit(0 if ok else 1)
