"""examples.ExamplePollingSensor: a PollingSensor dispatching examples.polling_event.

poll() runs every poll_interval seconds (sensors/polling_sensor.yaml). The event counter is
kept in the datastore (sensor-local key `examples.ExamplePollingSensor:count`) so it
survives restarts.
"""

import datetime

from st2reactor.sensor.base import PollingSensor

__all__ = ["ExamplePollingSensor"]

TRIGGER_REF = "examples.polling_event"


class ExamplePollingSensor(PollingSensor):
    def __init__(self, sensor_service, config=None, poll_interval=None):
        super(ExamplePollingSensor, self).__init__(
            sensor_service=sensor_service, config=config, poll_interval=poll_interval
        )
        self._logger = self.sensor_service.get_logger(name=self.__class__.__name__)
        self._count = 0

    def setup(self):
        stored = self.sensor_service.get_value("count", local=True)
        self._count = int(stored) if stored else 0

    def poll(self):
        config = self._config or {}
        polling = config.get("polling") or {}
        for _ in range(int(polling.get("batch_size", 1))):
            self._count += 1
            payload = {
                "executed_at": datetime.datetime.utcnow().isoformat() + "Z",
                "count": self._count,
                "even": self._count % 2 == 0,
                "greeting": config.get("greeting", "Hello"),
                "tags": polling.get("tags", []),
            }
            self._logger.debug("Dispatching %s: %s", TRIGGER_REF, payload)
            self.sensor_service.dispatch(
                trigger=TRIGGER_REF,
                payload=payload,
                trace_tag="examples-poll-%d" % self._count,
            )
        self.sensor_service.set_value("count", str(self._count), local=True)

    def cleanup(self):
        pass

    # This sensor's trigger type has no parameters, so there is nothing to track.
    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
