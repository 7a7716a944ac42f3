#!/usr/bin/env python
"""linux.check_processes: processes matching a state, a name regex or a pid.

Copied to the target host by remote-shell-script; standard library only.
Usage: check_processes.py <state|name|pid> <criteria> [pidlist]
Prints a JSON object {pid: command line}; with "pidlist", the pids also go to stderr.
"""

import json
import os
import re
import sys


def processes():
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/stat" % pid) as fh:
                stat = fh.readline()
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (IOError, OSError):
            continue
        # The state follows the parenthesised command name, which may contain spaces.
        state = stat[stat.rfind(")") + 2:].split()[0]
        yield pid, state, cmdline


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("Usage: check_processes.py <state|name|pid> <criteria> [pidlist]\n")
        return 2
    field, criteria = argv[1], argv[2]
    pidlist = "pidlist" in argv[3:]

    matches = {}
    for pid, state, cmdline in processes():
        if field == "state" and state == criteria:
            matches[pid] = cmdline
        elif field == "name" and re.search(criteria, cmdline):
            matches[pid] = cmdline
        elif field == "pid" and pid == criteria:
            matches[pid] = cmdline

    if pidlist:
        sys.stderr.write(" ".join(matches.keys()))
    print(json.dumps(matches))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
