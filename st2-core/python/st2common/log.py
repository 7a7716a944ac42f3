"""Logging (StackStorm's ``st2common.log``): stdlib loggers with an ``audit`` level."""

import logging as _logging

__all__ = ["getLogger", "AUDIT"]

# StackStorm's custom AUDIT level.
AUDIT = _logging.CRITICAL + 10
_logging.AUDIT = AUDIT
_logging.addLevelName(AUDIT, "AUDIT")


def _audit(self, msg, *args, **kwargs):
    if self.isEnabledFor(AUDIT):
        self._log(AUDIT, msg, args, **kwargs)


if not hasattr(_logging.Logger, "audit"):
    _logging.Logger.audit = _audit


def getLogger(name):
    """A stdlib logger (with ``audit``)."""
    return _logging.getLogger(name)
