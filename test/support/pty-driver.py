#!/usr/bin/python3
"""Runs a command on a pseudo-terminal of a fixed size and plays a conversation with it, for
end-to-end tests of interactive use (Node 20 has no pty of its own).

    pty-driver.py SPEC.json

SPEC: {"argv": [...], "rows": 40, "cols": 100, "timeout": 120, "steps": [STEP, ...]}
STEP is one of
    {"expect": REGEX, "timeout": S}        wait until the output since the last match matches
    {"send": TEXT}                         type TEXT (may hold control characters: "\\u0003")
    {"resize": [ROWS, COLS]}               change the window size (the command gets SIGWINCH)
    {"sleep": S}
    {"until": REGEX, "send": TEXT, "every": S, "timeout": S}
                                           type TEXT every S seconds until the output matches
Prints one JSON object: {"transcript", "exit_code", "signal", "failed" (the step that timed
out, or null)}. After the steps it reads until the command exits (or the overall timeout).
"""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    rows, cols = spec.get("rows", 24), spec.get("cols", 80)
    pid, master = pty.fork()
    if pid == 0:
        # the child's terminal gets its size before the command can read it (stty rows R cols C)
        set_size(0, rows, cols)
        os.execvp(spec["argv"][0], spec["argv"])
    deadline = time.monotonic() + spec.get("timeout", 120)
    out = bytearray()
    mark = 0
    state = {"eof": False}

    def pump(wait):
        if state["eof"]:
            time.sleep(wait)
            return
        r, _, _ = select.select([master], [], [], wait)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command and everything holding the terminal are gone
                data = b""
            if data:
                out.extend(data)
            else:
                state["eof"] = True

    def text():
        return out.decode("utf-8", "replace")

    def wait_for(pattern, timeout):
        nonlocal mark
        until = min(deadline, time.monotonic() + timeout)
        rx = re.compile(pattern)
        while True:
            m = rx.search(text(), mark)
            if m:
                mark = m.end()
                return True
            if state["eof"] or time.monotonic() > until:
                return False
            pump(0.05)

    failed = None
    for i, step in enumerate(spec["steps"]):
        if "until" in step:
            until = min(deadline, time.monotonic() + step.get("timeout", 20))
            ok = False
            while time.monotonic() < until and not state["eof"]:
                os.write(master, step["send"].encode())
                if wait_for(step["until"], step.get("every", 0.5)):
                    ok = True
                    break
            if not ok:
                failed = {"index": i, "step": step}
                break
        elif "expect" in step:
            if not wait_for(step["expect"], step.get("timeout", 20)):
                failed = {"index": i, "step": step}
                break
        elif "send" in step:
            os.write(master, step["send"].encode())
        elif "resize" in step:
            set_size(master, step["resize"][0], step["resize"][1])
            # the kernel signals the foreground process group of the terminal, as a terminal emulator's resize does
        elif "sleep" in step:
            end = time.monotonic() + step["sleep"]
            while time.monotonic() < end:
                pump(end - time.monotonic())
    if failed is not None:
        os.kill(pid, signal.SIGKILL)
    # read until the command exits
    status = None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            failed = failed or {"index": -1, "step": "the command did not exit in time"}
        pump(0.05)
    for _ in range(20):  # what is still buffered
        if state["eof"]:
            break
        pump(0.02)
    print(json.dumps({
        "transcript": text(),
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "failed": failed,
    }))


main()
