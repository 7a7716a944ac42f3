#!/usr/bin/env python
"""linux.dig: run `dig` and return its answer lines (a list of strings)."""

import locale
import random
import subprocess

from st2common.runners.base_action import Action

__all__ = ["DigAction"]


class DigAction(Action):
    def run(self, rand, count, nameserver, hostname, queryopts, querytype):
        cmd = ["dig"]
        if nameserver:
            cmd.append("@" + nameserver)
        opts = queryopts.split(",") if queryopts else []
        cmd.extend("+" + opt.strip() for opt in opts if opt.strip())
        cmd.extend([hostname, querytype])

        try:
            raw = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            ).stdout
        except FileNotFoundError:
            return (
                False,
                "Can't find dig installed in the path (usually /usr/bin/dig). If dig isn't "
                "installed, you can install it with 'sudo yum install bind-utils' or "
                "'sudo apt install dnsutils'",
            )

        text = raw.decode(locale.getpreferredencoding(do_setlocale=False), "replace")
        if querytype.lower() == "txt":
            text = text.replace('"', "")
        lines = [line for line in text.split("\n") if line]

        count = int(count)
        if count <= 0 or count > len(lines):
            count = len(lines)
        output = lines[:count]
        if rand:
            random.shuffle(output)
        return output
