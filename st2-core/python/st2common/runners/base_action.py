"""The base class of Python actions (StackStorm's ``st2common.runners.base_action``)."""

import abc

from st2common.runners.utils import PackConfigDict

__all__ = ["Action"]


class Action(object, metaclass=abc.ABCMeta):
    """Base action class other Python actions should inherit from.

    ``self.config`` is the pack config, ``self.action_service`` reaches the datastore
    (``get_value``, ``set_value``, ``delete_value``, ``list_values``) and ``self.logger`` logs
    to stderr. ``run(**parameters)`` returns the result, or a ``(succeeded, result)`` tuple.
    """

    description = None

    def __init__(self, config=None, action_service=None):
        self.action_service = action_service
        self._pack_name = getattr(action_service, "_pack", None) or "unknown"
        self._log_level = getattr(action_service, "_log_level", None) or "debug"
        self.config = PackConfigDict(self._pack_name, config or {})
        self._logger = None

    @property
    def logger(self):
        # Created on first use: importing logging costs a few milliseconds per run.
        logger = getattr(self, "_logger", None)
        if logger is None:
            from st2common.runners.utils import get_logger_for_python_runner_action

            logger = get_logger_for_python_runner_action(
                action_name=self.__class__.__name__,
                log_level=getattr(self, "_log_level", "debug"),
            )
            self._logger = logger
        return logger

    @logger.setter
    def logger(self, value):
        self._logger = value

    @abc.abstractmethod
    def run(self, **kwargs):
        pass
