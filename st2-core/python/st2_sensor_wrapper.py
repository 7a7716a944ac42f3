"""Runs one StackStorm Python sensor for the st2 sensor container.

Started by ``st2-core/src/sensors/python/`` as::

    python -u st2_sensor_wrapper.py <control socket path>

with this directory (the ``st2common`` / ``st2reactor`` shim) and the pack's ``sensors/`` and
``lib/`` directories on PYTHONPATH, in the pack's virtualenv when it has one.

Control protocol: JSON, one object per line, over the Unix socket (stdout and stderr go to the
container's log):

* container -> wrapper, once, first: ``{"sensor_ref", "pack", "file_path", "class_name",
  "poll_interval", "config", "triggers": [<trigger>...], "log_level", "virtualenv", "api_url"}``
* container -> wrapper, while running: ``{"method": "add_trigger" | "update_trigger" |
  "remove_trigger", "params": {"trigger": <trigger>}}``
* wrapper -> container, for each ``sensor_service.dispatch``:
  ``{"method": "dispatch", "params": {"trigger", "payload", "trace_tag"}}`` (not answered:
  dispatches are sent in order and stored by the container in that order)
* wrapper -> container, for each datastore call: ``{"id": <n>, "method": "get_value" |
  "set_value" | "delete_value" | "list_values", "params": {...}}``, answered by
  ``{"id": <n>, "result": <value>}`` or ``{"id": <n>, "error": "<message>"}``

Lifecycle (StackStorm's ``SensorWrapper``): ``setup()``, ``add_trigger()`` for each trigger
that exists, then ``run()``. SIGTERM (the container stopping the sensor) or the container
closing the channel calls ``cleanup()`` and exits 0. An exception in ``setup()`` or ``run()``
exits 1 with the traceback on stderr.
"""

import json
import os
import signal
import socket
import sys
import threading

__all__ = ["Channel", "SensorService", "main"]


def _json_default(value):
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if type(value).__name__ == "UUID":
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError("%r is not JSON serializable" % (value,))


def _dumps(value):
    return json.dumps(value, default=_json_default, separators=(",", ":"))


class Channel(object):
    """The control channel to the sensor container (see the module docstring). A reader
    thread routes answers to their callers and container calls to ``on_call``."""

    def __init__(self, path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._reader = self._sock.makefile("rb")
        self._write_lock = threading.Lock()
        self._calls_lock = threading.Lock()
        self._next_id = 0
        self._waiting = {}
        self.on_call = None
        self.on_close = None

    def receive(self):
        """The next message (used for the init message, before the reader thread starts)."""
        line = self._reader.readline()
        if not line:
            raise RuntimeError("the sensor container closed the control channel")
        return json.loads(line)

    def send(self, message):
        data = _dumps(message).encode("utf-8") + b"\n"
        with self._write_lock:
            self._sock.sendall(data)

    def start(self):
        thread = threading.Thread(target=self._read_loop, name="st2-sensor-channel", daemon=True)
        thread.start()

    def _read_loop(self):
        try:
            while True:
                line = self._reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if "id" in message and "method" not in message:
                    with self._calls_lock:
                        slot = self._waiting.get(message["id"])
                    if slot is not None:
                        slot[1] = message
                        slot[0].set()
                elif self.on_call is not None:
                    self.on_call(message.get("method"), message.get("params") or {})
        except Exception as e:  # the channel is gone or garbled: stop the sensor
            sys.stderr.write("sensor control channel failed: %s\n" % (e,))
        for slot in list(self._waiting.values()):
            slot[1] = {"error": "the sensor container closed the control channel"}
            slot[0].set()
        if self.on_close is not None:
            self.on_close()

    def call(self, method, **params):
        """Calls the container and returns its answer; raises RuntimeError on an error."""
        slot = [threading.Event(), None]
        with self._calls_lock:
            self._next_id += 1
            call_id = self._next_id
            self._waiting[call_id] = slot
        try:
            self.send({"id": call_id, "method": method, "params": params})
            slot[0].wait()
        finally:
            with self._calls_lock:
                self._waiting.pop(call_id, None)
        reply = slot[1] or {}
        if reply.get("error") is not None:
            raise RuntimeError(reply["error"])
        return reply.get("result")


class SensorService(object):
    """What sensors get as ``sensor_service`` (StackStorm's ``SensorService``)."""

    def __init__(self, pack, class_name, logger, channel):
        self._pack = pack
        self._class_name = class_name
        self._logger = logger
        self._channel = channel
        self._datastore_service = None

    @property
    def datastore_service(self):
        if self._datastore_service is None:
            from st2common.services.datastore import ActionDatastoreService

            self._datastore_service = ActionDatastoreService(
                logger=self.get_logger("datastore"),
                pack_name=self._pack,
                class_name=self._class_name,
                auth_token=os.environ.get("ST2_AUTH_TOKEN"),
                user=None,
                channel=self._channel,
            )
        return self._datastore_service

    def get_logger(self, name):
        """A logger named after the sensor and ``name``."""
        import logging

        return logging.getLogger("%s.%s" % (self._logger.name, name))

    def get_user_info(self):
        return self.datastore_service.get_user_info()

    def get_api_client(self):
        return self.datastore_service.get_api_client()

    def dispatch(self, trigger, payload=None, trace_tag=None):
        """Dispatches an instance of ``trigger`` (a trigger ref) with ``payload``."""
        self._channel.send(
            {
                "method": "dispatch",
                "params": {"trigger": trigger, "payload": payload or {}, "trace_tag": trace_tag},
            }
        )

    def dispatch_with_context(self, trigger, payload=None, trace_context=None):
        """Like ``dispatch``; the trace context's ``trace_tag`` tags the instance."""
        trace_tag = None
        if isinstance(trace_context, dict):
            trace_tag = trace_context.get("trace_tag")
        elif trace_context is not None:
            trace_tag = getattr(trace_context, "trace_tag", None)
        self.dispatch(trigger, payload=payload, trace_tag=trace_tag)

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


def load_sensor_class(file_path, class_name):
    """The class ``class_name`` of the module at ``file_path`` (StackStorm's
    ``loader.register_plugin_class``)."""
    import importlib.util

    plugin_dir = os.path.dirname(os.path.realpath(file_path))
    if plugin_dir not in sys.path:
        sys.path.append(plugin_dir)
    if not os.path.isfile(file_path):
        raise IOError('Sensor file "%s" does not exist.' % (file_path))
    module_name = os.path.splitext(os.path.basename(file_path))[0]
    spec = importlib.util.spec_from_file_location(module_name, file_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise Exception(
            'Sensor file "%s" has no class "%s".' % (file_path, class_name)
        )
    return cls


def _setup_logging(name, level_name):
    import logging

    from st2common import log  # noqa: F401 (adds the AUDIT level)

    level = getattr(logging, str(level_name).upper(), logging.INFO)
    if not isinstance(level, int):
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s [-] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return logging.getLogger(name)


class _Stop(BaseException):
    """Raised in the main thread to stop the sensor."""


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s <control socket>\n" % (argv[0]))
        return 2
    channel = Channel(argv[1])
    init = channel.receive()

    virtualenv = init.get("virtualenv")
    if virtualenv:
        bin_dir = os.path.join(virtualenv, "bin")
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        os.environ["VIRTUAL_ENV"] = virtualenv

    pack = init.get("pack") or "unknown"
    class_name = init["class_name"]
    logger = _setup_logging(
        "SensorWrapper_%s_%s" % (pack, class_name), init.get("log_level") or "INFO"
    )
    config = init.get("config") or {}
    if not isinstance(config, dict):
        raise TypeError("Pack config needs to be a dictionary (was %s)." % (type(config)))

    from st2reactor.sensor.base import PollingSensor

    sensor_cls = load_sensor_class(init["file_path"], class_name)
    service = SensorService(pack=pack, class_name=class_name, logger=logger, channel=channel)
    poll_interval = init.get("poll_interval")
    if poll_interval and issubclass(sensor_cls, PollingSensor):
        sensor = sensor_cls(sensor_service=service, config=config, poll_interval=poll_interval)
    else:
        sensor = sensor_cls(sensor_service=service, config=config)

    stopping = threading.Event()

    def stop(*_args):
        if not stopping.is_set():
            stopping.set()
            raise _Stop()

    def apply(method, params):
        trigger = params.get("trigger")
        handler = {
            "add_trigger": sensor.add_trigger,
            "update_trigger": sensor.update_trigger,
            "remove_trigger": sensor.remove_trigger,
        }.get(method)
        if handler is None or trigger is None:
            logger.warning("Unknown call from the sensor container: %s", method)
            return
        try:
            handler(trigger)
        except Exception:
            logger.exception("%s failed for trigger %s", method, trigger.get("ref"))

    # Trigger changes are applied in order on a thread of their own, once the triggers that
    # existed at start have been added (the reader thread must stay free to route answers).
    import queue

    changes = queue.Queue()
    ready = threading.Event()

    def apply_changes():
        ready.wait()
        while True:
            method, params = changes.get()
            apply(method, params)

    threading.Thread(target=apply_changes, name="st2-sensor-triggers", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    channel.on_call = lambda method, params: changes.put((method, params))
    # The container went away: stop like on SIGTERM (the signal reaches the main thread).
    channel.on_close = lambda: os.kill(os.getpid(), signal.SIGTERM)

    try:
        try:
            logger.info("Running sensor %s", init.get("sensor_ref"))
            channel.start()
            sensor.setup()
            for trigger in init.get("triggers") or []:
                apply("add_trigger", {"trigger": trigger})
            ready.set()
            sensor.run()
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                sensor.cleanup()
            except Exception:
                logger.exception("Sensor cleanup failed")
    except _Stop:
        return 0
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
