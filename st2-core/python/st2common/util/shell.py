"""Shell quoting (StackStorm's ``st2common.util.shell``)."""

import shlex

__all__ = ["quote_unix", "quote_windows"]


def quote_unix(value):
    """Quotes ``value`` for a POSIX shell (``shlex.quote``)."""
    return shlex.quote(value)


def quote_windows(value):
    """Quotes ``value`` for cmd.exe (``subprocess.list2cmdline``)."""
    import subprocess

    return subprocess.list2cmdline([value])
