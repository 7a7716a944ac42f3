#!/usr/bin/env python
"""linux.check_loadavg: load average per CPU.

Copied to the target host by remote-shell-script; standard library only.
Usage: check_loadavg.py [1|5|15|all]  -> one number, or a JSON object {"1","5","15"}.
"""

import json
import os
import sys


def main(argv):
    period = argv[1] if len(argv) >= 2 else "all"
    try:
        with open("/proc/loadavg") as fh:
            load = [float(x) for x in fh.readline().split()[0:3]]
    except (IOError, OSError, ValueError) as e:
        print("Error reading /proc/loadavg: %s" % e)
        return 2
    cpus = os.cpu_count() or 1

    output = {
        "1": str(load[0] / cpus),
        "5": str(load[1] / cpus),
        "15": str(load[2] / cpus),
    }
    aliases = {"one": "1", "five": "5", "fifteen": "15"}
    period = aliases.get(period, period)
    if period in output:
        print(output[period])
    else:
        print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
