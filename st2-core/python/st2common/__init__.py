"""Minimal StackStorm-compatible ``st2common`` for Python actions run by the st2 action runner.

Only what pack actions commonly import is here: ``runners.base_action.Action``, ``log``,
``constants.keyvalue`` / ``constants.action``, ``util.shell``, ``util.jsonify`` and the
datastore service behind ``self.action_service``. Keep imports lazy: every action run pays for
what this package imports at start.
"""

__version__ = "3.9.0"
