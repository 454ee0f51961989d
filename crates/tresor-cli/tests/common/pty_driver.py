# Runs one program on a fresh pseudo-terminal (its controlling terminal,
# stdin, stdout and stderr) and answers its prompts, for tresor's tty tests.
#
#   python3 pty_driver.py SPEC_JSON
#
# SPEC: {"argv": [...], "env": {...}, "cwd": "...", "timeout": seconds,
#        "steps": [["expect", "text"], ["send", "text"], ["type", "text"], ...]}
# "expect" waits for the text to appear after the previous match; "send"
# first waits until the terminal's echo is off (a hidden prompt is up), then
# types the text; "type" types it at once (a shell's command line, Ctrl-Z). Prints one JSON object: {"exit": code, "transcript": b64,
# "error": null or why the driver gave up}. The driver exits 0 unless its own
# arguments are bad.
import base64
import json
import os
import pty
import select
import signal
import sys
import termios
import time

spec = json.loads(sys.argv[1])
deadline = time.time() + float(spec.get("timeout", 30))
pid, fd = pty.fork()
if pid == 0:
    try:
        # A fresh terminal session starts as a login would: every signal at
        # its default action. Ignored ones would survive the exec (a test
        # harness started in the background ignores SIGINT and SIGQUIT,
        # Python ignores SIGPIPE), and Ctrl-C would reach nothing.
        for sig in ("SIGINT", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGPIPE",
                    "SIGXFSZ", "SIGHUP", "SIGTERM"):
            signal.signal(getattr(signal, sig), signal.SIG_DFL)
        os.chdir(spec.get("cwd", "/"))
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    finally:
        os._exit(127)

buf = bytearray()
pos = 0
eof = False
error = None


def pump(timeout):
    """Reads what is there within `timeout` seconds; False at end of output."""
    global eof
    if eof:
        return False
    r, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not r:
        return True
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        chunk = b""
    if not chunk:
        eof = True
        return False
    buf.extend(chunk)
    return True


def echo_off():
    try:
        return not (termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        return False


try:
    for step, text in spec["steps"]:
        data = text.encode()
        if step == "expect":
            while True:
                at = buf.find(data, pos)
                if at >= 0:
                    pos = at + len(data)
                    break
                if time.time() > deadline:
                    raise TimeoutError("timed out waiting for %r" % text)
                if not pump(deadline - time.time()):
                    raise EOFError("output ended before %r" % text)
        elif step == "send":
            while not echo_off():
                if time.time() > deadline:
                    raise TimeoutError("echo never went off before sending")
                pump(0.01)
            os.write(fd, data)
        elif step == "type":
            os.write(fd, data)
        elif step in ("stopped", "running"):
            # A job's processes stop one by one as each is scheduled; one
            # still blocked in a read of the terminal would take the next
            # line typed, so the next step waits for all of them.
            want_stopped = step == "stopped"
            while True:
                states = None
                try:
                    with open(os.path.join(spec.get("cwd", "/"), text)) as f:
                        pids = f.read().split()
                    states = []
                    for p in pids:
                        with open("/proc/%s/stat" % p) as f:
                            states.append(f.read().rsplit(")", 1)[1].split()[0])
                    if pids and all((s == "T") == want_stopped for s in states):
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise TimeoutError("processes in %r not %s: states %r" % (text, step, states))
                pump(0.01)
        else:
            raise ValueError("unknown step %r" % step)
except Exception as e:  # noqa: BLE001 - reported to the test, which fails
    error = "%s: %s" % (type(e).__name__, e)

while time.time() < deadline and pump(deadline - time.time()):
    pass
if not eof:
    os.kill(pid, 9)
    error = error or "the program did not finish in time"
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"exit": code, "transcript": base64.b64encode(bytes(buf)).decode(),
                  "error": error}))
