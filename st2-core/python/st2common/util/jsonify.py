"""JSON helpers (StackStorm's ``st2common.util.jsonify``)."""

import json

__all__ = ["json_encode", "json_decode", "json_loads", "try_loads"]


def json_encode(obj, indent=None, sort_keys=False):
    """Serializes ``obj``; compact unless ``indent`` is given (as StackStorm's orjson path)."""
    separators = None if indent else (",", ":")
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, separators=separators, default=str)


def json_decode(data):
    """Parses a JSON document."""
    return json.loads(data)


def json_loads(obj, keys=None):
    """Parses the values of ``keys`` (all keys by default) of ``obj`` that hold JSON text."""
    if not obj:
        return None
    for key in keys or list(obj.keys()):
        try:
            obj[key] = json_decode(obj[key])
        except Exception:
            pass
    return obj


def try_loads(s):
    """``s`` parsed as JSON when it is JSON text, else ``s``."""
    try:
        return json_decode(s) if s and isinstance(s, str) else s
    except Exception:
        return s
