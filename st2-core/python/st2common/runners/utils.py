"""Helpers of the Python runner (StackStorm's ``st2common.runners.utils``)."""

__all__ = [
    "PackConfigDict",
    "get_logger_for_python_runner_action",
    "get_action_class_instance",
]

# Error raised when an action reads a config key that doesn't exist.
CONFIG_MISSING_ITEM_ERROR = """
Config for pack "%s" is missing key "%s".
Make sure that the config file exists on disk (configs/%s.yaml) and contains that key.

Also make sure you run "st2ctl reload --register-configs" when you add a
config and after every change you make to the config.
"""

# One logger per action class, so messages are not duplicated.
LOGGERS = {}


class PackConfigDict(dict):
    """A pack config whose missing keys raise a helpful ValueError instead of KeyError."""

    def __init__(self, pack_name, *args):
        super(PackConfigDict, self).__init__(*args)
        self._pack_name = pack_name

    def __getitem__(self, key):
        try:
            return super(PackConfigDict, self).__getitem__(key)
        except KeyError:
            raise ValueError(CONFIG_MISSING_ITEM_ERROR % (self._pack_name, key, self._pack_name))


def get_logger_for_python_runner_action(action_name, log_level="debug"):
    """A logger ``actions.python.<action_name>`` writing ``log_level`` and above to stderr."""
    import logging as stdlib_logging

    from st2common import log as logging

    logger_name = "actions.python.%s" % (action_name)
    if logger_name in LOGGERS:
        return LOGGERS[logger_name]

    level = getattr(stdlib_logging, str(log_level).upper(), stdlib_logging.DEBUG)
    if not isinstance(level, int):
        level = stdlib_logging.DEBUG
    logger = logging.getLogger(logger_name)
    console = stdlib_logging.StreamHandler()
    console.setLevel(level)
    console.setFormatter(stdlib_logging.Formatter("%(name)-12s: %(levelname)-8s %(message)s"))
    logger.addHandler(console)
    logger.setLevel(level)
    LOGGERS[logger_name] = logger
    return logger


def get_action_class_instance(action_cls, config=None, action_service=None):
    """Instantiates ``action_cls``; classes whose constructor does not take ``action_service``
    get it assigned afterwards (as StackStorm does for old actions)."""
    try:
        return action_cls(config=config, action_service=action_service)
    except TypeError as e:
        if "unexpected keyword argument 'action_service'" not in str(e):
            raise
    instance = action_cls(config=config)
    instance.action_service = action_service
    return instance
