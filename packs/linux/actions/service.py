#!/usr/bin/env python
"""linux.service: start / stop / restart / status a service on the target host.

Runs through remote-shell-script: the file is copied as-is to the remote host and run with
its Python, outside any virtualenv, so it only uses the standard library.
Usage: service.py <act> <service>
"""

import os
import shutil
import subprocess
import sys


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("Usage: service.py <action> <service>\n")
        return 2
    act, service = argv[1], argv[2]
    for value in (act, service):
        if not value or value.startswith("-") or "/" in value:
            sys.stderr.write("Invalid argument: %r\n" % value)
            return 2

    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        cmd = ["systemctl", act, service]
    elif os.path.isfile("/etc/init.d/%s" % service):
        cmd = ["/etc/init.d/%s" % service, act]
    elif shutil.which("service"):
        cmd = ["service", service, act]
    else:
        sys.stderr.write("Unknown service manager; cannot %s %s\n" % (act, service))
        return 2

    print("Running: %s" % " ".join(cmd))
    return subprocess.call(cmd, shell=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
