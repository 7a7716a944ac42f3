"""Runs one StackStorm Python action for the st2 action runner (runner type ``python-script``).

Started by ``st2-core/src/runners/python.rs`` as::

    python -u st2_python_wrapper.py <control socket path>

with this directory (the ``st2common`` shim) and the pack's ``actions/lib`` on PYTHONPATH.

Control protocol: JSON, one object per line, over the Unix socket (stdout and stderr stay the
action's own output):

* runner -> wrapper, once, first: ``{"pack", "file_path", "parameters", "config", "user",
  "log_level", "virtualenv", "execution_id", "api_url"}``
* wrapper -> runner, for each ``action_service`` call:
  ``{"id": <n>, "method": "get_value" | "set_value" | "delete_value" | "list_values",
  "params": {...}}``, answered by ``{"id": <n>, "result": <value>}`` or
  ``{"id": <n>, "error": "<message>"}``
* wrapper -> runner, once ``run()`` has returned:
  ``{"method": "result", "params": {"status": true | false | null, "result": <value>}}``

Exit codes: 0 when ``run()`` returned, 1 (with the traceback on stderr) when it raised,
220 when it returned a ``(status, result)`` tuple whose status is not a bool.

This file only imports what every run needs; anything heavier is imported when used.
"""

import json
import os
import socket
import sys

# Exit code when run() returned a status that is not a bool (StackStorm's
# PYTHON_RUNNER_INVALID_ACTION_STATUS_EXIT_CODE).
INVALID_STATUS_EXIT_CODE = 220

INVALID_STATUS_ERROR_MESSAGE = """
If this is an existing action which returns a tuple with two items, it needs to be updated to
either:

1. Return a list instead of a tuple
2. Return a tuple where a first items is a status flag - (True, ('item1', 'item2'))

For more information, please see: https://docs.stackstorm.com/upgrade_notes.html#st2-v1-6
""".strip()


def _json_default(value):
    """Serializes what orjson (StackStorm's encoder) handles and json does not."""
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if type(value).__name__ == "UUID":
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError("%r is not JSON serializable" % (value,))


def _dumps(value):
    return json.dumps(value, default=_json_default, allow_nan=False, separators=(",", ":"))


class Channel(object):
    """The control channel to the action runner (see the module docstring)."""

    def __init__(self, path):
        import _thread

        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._reader = self._sock.makefile("rb")
        self._lock = _thread.allocate_lock()
        self._next_id = 0

    def _send(self, message):
        self._sock.sendall(_dumps(message).encode("utf-8") + b"\n")

    def receive(self):
        line = self._reader.readline()
        if not line:
            raise RuntimeError("the action runner closed the control channel")
        return json.loads(line)

    def call(self, method, **params):
        """Calls the runner and returns its answer; raises RuntimeError on an error answer."""
        with self._lock:
            self._next_id += 1
            self._send({"id": self._next_id, "method": method, "params": params})
            reply = self.receive()
        if reply.get("error") is not None:
            raise RuntimeError(reply["error"])
        return reply.get("result")

    def send_result(self, status, result):
        try:
            encoded = _dumps(result)
        except (TypeError, ValueError):
            # Like StackStorm: a result that is not JSON serializable is returned as its str().
            encoded = _dumps(str(result))
        line = '{"method":"result","params":{"status":%s,"result":%s}}\n' % (
            _dumps(status),
            encoded,
        )
        with self._lock:
            self._sock.sendall(line.encode("utf-8"))


def load_action_class(file_path):
    """The action class of ``file_path`` (StackStorm's ``loader.register_plugin``): the first,
    by name, of the classes defined in that module that subclass ``Action``."""
    import importlib.util

    from st2common.runners.base_action import Action

    plugin_dir = os.path.dirname(os.path.realpath(file_path))
    if plugin_dir not in sys.path:
        sys.path.append(plugin_dir)
    module_name = os.path.splitext(os.path.basename(file_path))[0]
    try:
        if not os.path.isfile(file_path):
            raise IOError('File "%s" does not exist.' % (file_path))
        spec = importlib.util.spec_from_file_location(module_name, file_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception as e:
        import traceback

        msg = (
            'Failed to load action class from file "%s" (action file most likely doesn\'t '
            "exist or contains invalid syntax): %s" % (file_path, e)
        )
        msg += "\n\n" + traceback.format_exc()
        try:
            error = type(e)(msg)
        except Exception:
            error = Exception(msg)
        raise error

    classes = []
    for name, value in sorted(vars(module).items()):
        if (
            isinstance(value, type)
            and value.__module__ == module.__name__
            and issubclass(value, Action)
            and value is not Action
            and not getattr(value, "__abstractmethods__", None)
        ):
            classes.append(value)
    if not classes:
        raise Exception(
            'File "%s" has no action class or the file doesn\'t exist.' % (file_path)
        )
    return classes[0]


class ActionService(object):
    """What actions get as ``self.action_service`` (StackStorm's ``ActionService``)."""

    def __init__(self, pack, class_name, user, log_level, channel):
        self._pack = pack
        self._class_name = class_name
        self._user = user
        self._log_level = log_level
        self._channel = channel
        self._datastore_service = None

    @property
    def datastore_service(self):
        if self._datastore_service is None:
            from st2common.runners.utils import get_logger_for_python_runner_action
            from st2common.services.datastore import ActionDatastoreService

            logger = get_logger_for_python_runner_action(
                action_name=self._class_name, log_level=self._log_level
            )
            self._datastore_service = ActionDatastoreService(
                logger=logger,
                pack_name=self._pack,
                class_name=self._class_name,
                auth_token=os.environ.get("ST2_ACTION_AUTH_TOKEN"),
                user=self._user,
                channel=self._channel,
            )
        return self._datastore_service

    def get_user_info(self):
        return self.datastore_service.get_user_info()

    def list_values(self, local=True, prefix=None, limit=None, offset=None):
        return self.datastore_service.list_values(
            local=local, prefix=prefix, limit=limit, offset=offset
        )

    def get_value(self, name, local=True, scope="system", decrypt=False):
        return self.datastore_service.get_value(
            name=name, local=local, scope=scope, decrypt=decrypt
        )

    def set_value(self, name, value, ttl=None, local=True, scope="system", encrypt=False):
        return self.datastore_service.set_value(
            name=name, value=value, ttl=ttl, local=local, scope=scope, encrypt=encrypt
        )

    def delete_value(self, name, local=True, scope="system"):
        return self.datastore_service.delete_value(name=name, local=local, scope=scope)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s <control socket>\n" % (argv[0]))
        return 2
    channel = Channel(argv[1])
    init = channel.receive()

    virtualenv = init.get("virtualenv")
    if virtualenv:
        # Processes the action starts find the virtualenv's tools first (StackStorm's
        # get_sandbox_path).
        bin_dir = os.path.join(virtualenv, "bin")
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        os.environ["VIRTUAL_ENV"] = virtualenv

    config = init.get("config") or {}
    if not isinstance(config, dict):
        raise TypeError("Pack config needs to be a dictionary (was %s)." % (type(config)))
    parameters = init.get("parameters") or {}
    pack = init.get("pack") or "unknown"
    log_level = init.get("log_level") or "DEBUG"

    action_cls = load_action_class(init["file_path"])
    service = ActionService(
        pack=pack,
        class_name=action_cls.__name__,
        user=init.get("user"),
        log_level=log_level,
        channel=channel,
    )

    from st2common.runners.utils import get_action_class_instance

    action = get_action_class_instance(action_cls, config=config, action_service=service)
    output = action.run(**parameters)

    if isinstance(output, tuple) and len(output) == 2:
        status, result = output
    else:
        status, result = None, output

    if status is not None and not isinstance(status, bool):
        sys.stderr.write(
            "Status returned from the action run() method must either be True or False, "
            "got: %s\n" % (status,)
        )
        sys.stderr.write(INVALID_STATUS_ERROR_MESSAGE)
        sys.stderr.flush()
        return INVALID_STATUS_EXIT_CODE

    sys.stdout.flush()
    channel.send_result(status, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
