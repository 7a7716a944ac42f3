"""linux.FileWatchSensor: emit linux.file_watch.line for every new line of watched files.

The files to follow come from the triggers of rules on `linux.file_watch.line` (trigger
parameter `file_path`). Files are polled once a second (standard library only): the sensor
starts at the end of each file, survives the file not existing yet, and starts over when
the file is truncated or replaced (log rotation).
"""

import os
import threading

from st2reactor.sensor.base import Sensor

__all__ = ["FileWatchSensor"]

POLL_INTERVAL = 1.0


class _TailedFile(object):
    """Read position and partial last line of one followed file."""

    def __init__(self, path):
        self.path = path
        self.inode = None
        self.offset = 0
        self.partial = b""
        self._open_at_end()

    def _open_at_end(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return
        self.inode, self.offset = st.st_ino, st.st_size

    def read_lines(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if self.inode is None:
            # The file appeared after we started watching: read it from the start.
            self.inode, self.offset = st.st_ino, 0
        elif st.st_ino != self.inode or st.st_size < self.offset:
            # Rotated or truncated.
            self.inode, self.offset, self.partial = st.st_ino, 0, b""
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        return [c.rstrip(b"\r").decode("utf-8", "replace") for c in chunks]


class FileWatchSensor(Sensor):
    def __init__(self, sensor_service, config=None):
        super(FileWatchSensor, self).__init__(sensor_service=sensor_service, config=config)
        self._logger = self._sensor_service.get_logger(__name__)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # file path -> (_TailedFile, trigger ref)
        self._files = {}

    def setup(self):
        pass

    def run(self):
        while not self._stop.is_set():
            with self._lock:
                watched = list(self._files.values())
            for tailed, trigger in watched:
                for line in tailed.read_lines():
                    self._handle_line(tailed.path, line, trigger)
            self._stop.wait(POLL_INTERVAL)

    def cleanup(self):
        self._stop.set()

    def add_trigger(self, trigger):
        file_path = (trigger.get("parameters") or {}).get("file_path")
        if not file_path:
            self._logger.error('Received trigger type without "file_path" field.')
            return
        ref = trigger.get("ref")
        if not ref:
            raise Exception("Trigger %s did not contain a ref." % trigger)
        with self._lock:
            self._files[file_path] = (_TailedFile(file_path), ref)
        self._logger.info('Added file "%s"', file_path)

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        file_path = (trigger.get("parameters") or {}).get("file_path")
        if not file_path:
            self._logger.error('Received trigger type without "file_path" field.')
            return
        with self._lock:
            self._files.pop(file_path, None)
        self._logger.info('Removed file "%s"', file_path)

    def _handle_line(self, file_path, line, trigger):
        payload = {
            "file_path": file_path,
            "file_name": os.path.basename(file_path),
            "line": line,
        }
        self._logger.debug("Sending payload %s for trigger %s to sensor_service.", payload, trigger)
        self.sensor_service.dispatch(trigger=trigger, payload=payload)
