"""Base classes of pack sensors (StackStorm's ``st2reactor.sensor.base``).

A sensor gets ``sensor_service`` (dispatch, logger, datastore) and the pack config; the sensor
container calls ``setup()``, then ``add_trigger()`` for each trigger of its trigger types, then
``run()`` (which keeps running), and ``cleanup()`` when the sensor is stopped. Triggers created,
changed or deleted while it runs arrive as ``add_trigger`` / ``update_trigger`` /
``remove_trigger`` calls from another thread.
"""

import abc
import time

__all__ = ["Sensor", "PollingSensor"]


class BaseSensor(object, metaclass=abc.ABCMeta):
    """What every sensor has: ``sensor_service``, ``_config`` / ``config``."""

    def __init__(self, sensor_service, config=None):
        self._sensor_service = sensor_service
        self.sensor_service = sensor_service
        self._config = config or {}
        self.config = self._config

    @abc.abstractmethod
    def setup(self):
        """Called once, before ``run()``."""

    @abc.abstractmethod
    def run(self):
        """The sensor's main loop."""

    @abc.abstractmethod
    def cleanup(self):
        """Called once, when the sensor is stopped."""

    @abc.abstractmethod
    def add_trigger(self, trigger):
        """A trigger of one of the sensor's trigger types was created (or existed at start)."""

    @abc.abstractmethod
    def update_trigger(self, trigger):
        """A trigger of one of the sensor's trigger types changed."""

    @abc.abstractmethod
    def remove_trigger(self, trigger):
        """A trigger of one of the sensor's trigger types was deleted."""


class Sensor(BaseSensor):
    """A passive sensor: ``run()`` listens (for example a server) and dispatches."""

    @abc.abstractmethod
    def run(self):
        """The sensor's main loop."""


class PollingSensor(BaseSensor):
    """A sensor whose ``poll()`` is called every ``poll_interval`` seconds."""

    def __init__(self, sensor_service, config=None, poll_interval=5):
        super(PollingSensor, self).__init__(sensor_service=sensor_service, config=config)
        self._poll_interval = poll_interval

    @abc.abstractmethod
    def poll(self):
        """One poll of the watched system."""

    def run(self):
        while True:
            self.poll()
            time.sleep(self._poll_interval)

    def get_poll_interval(self):
        """The interval between polls, in seconds."""
        return self._poll_interval

    def set_poll_interval(self, poll_interval):
        """Changes the interval between polls (seconds)."""
        self._poll_interval = poll_interval
