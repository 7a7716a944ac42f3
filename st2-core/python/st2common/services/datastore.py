"""The datastore service behind ``self.action_service`` (StackStorm's
``st2common.services.datastore.ActionDatastoreService``).

Calls go to the action runner over the wrapper's control channel instead of the REST API.
Key names are local to the pack and action class by default (``local=True``): the stored name
is ``<pack>.<ActionClass>:<name>``.
"""

import os

from st2common.constants.keyvalue import (
    DATASTORE_KEY_SEPARATOR,
    FULL_SYSTEM_SCOPE,
    FULL_USER_SCOPE,
    SYSTEM_SCOPE,
    USER_SCOPE,
)

__all__ = ["ActionDatastoreService", "KeyValuePair"]

_SCOPES = (SYSTEM_SCOPE, USER_SCOPE, FULL_SYSTEM_SCOPE, FULL_USER_SCOPE)


class KeyValuePair(object):
    """A datastore item as ``list_values`` returns it (like st2client's model)."""

    def __init__(self, **fields):
        self.id = None
        self.name = None
        self.value = None
        self.secret = False
        self.encrypted = False
        self.scope = FULL_SYSTEM_SCOPE
        self.user = None
        self.ttl = None
        self.expire_timestamp = None
        self.uid = None
        self.__dict__.update(fields)

    def to_dict(self):
        return dict(self.__dict__)

    def __repr__(self):
        return "<KeyValuePair name=%s,value=%s>" % (self.name, self.value)


class _Webhooks(object):
    def __init__(self, client):
        self._client = client

    def post_generic_webhook(self, trigger, payload=None, trace_tag=None, **kwargs):
        """POST ``/webhooks/st2``: dispatches ``trigger`` with ``payload``."""
        headers = {}
        if trace_tag:
            headers["St2-Trace-Tag"] = trace_tag
        return self._client.post(
            "/webhooks/st2", {"trigger": trigger, "payload": payload or {}}, headers=headers
        )


class ApiClient(object):
    """A minimal client of the platform's REST API (what ``get_api_client`` returns)."""

    def __init__(self, api_url, token=None):
        self.api_url = (api_url or "").rstrip("/")
        self.token = token
        self.webhooks = _Webhooks(self)

    def post(self, path, data, headers=None):
        import json
        import urllib.request

        if not self.api_url:
            raise RuntimeError("No API URL is available to this action (ST2_ACTION_API_URL)")
        all_headers = {"Content-Type": "application/json"}
        if self.token:
            all_headers["X-Auth-Token"] = self.token
        all_headers.update(headers or {})
        request = urllib.request.Request(
            self.api_url + path,
            data=json.dumps(data).encode("utf-8"),
            headers=all_headers,
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read().decode("utf-8")
        try:
            return json.loads(body) if body else None
        except ValueError:
            return body


class ActionDatastoreService(object):
    """Datastore access of one action class."""

    DATASTORE_NAME_SEPARATOR = DATASTORE_KEY_SEPARATOR

    def __init__(self, logger, pack_name, class_name, auth_token=None, user=None, channel=None):
        self._logger = logger
        self._pack_name = pack_name
        self._class_name = class_name
        self._auth_token = auth_token
        self._user = user
        self._channel = channel
        self._client = None

    def _call(self, method, **params):
        if self._channel is None:
            raise RuntimeError("The datastore is only available inside the action runner")
        return self._channel.call(method, **params)

    def get_user_info(self):
        """The user the action runs for."""
        return {"username": self._user, "authentication": {"method": "authentication token"}}

    def get_api_client(self):
        """A client of the platform's API, authenticated with the action's token."""
        if self._client is None:
            self._client = ApiClient(
                api_url=os.environ.get("ST2_ACTION_API_URL"),
                token=self._auth_token or os.environ.get("ST2_ACTION_AUTH_TOKEN"),
            )
        return self._client

    def list_values(self, local=True, prefix=None, limit=None, offset=None):
        """The items whose name starts with ``prefix`` (within the local namespace when
        ``local``), as :class:`KeyValuePair` objects."""
        key_prefix = self._get_full_key_prefix(local=local, prefix=prefix)
        items = self._call("list_values", prefix=key_prefix) or []
        kvps = [KeyValuePair(**item) for item in items]
        if offset:
            kvps = kvps[int(offset):]
        if limit:
            kvps = kvps[: int(limit)]
        return kvps

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        """The value of ``name``, or None when it doesn't exist."""
        self._check_scope(scope)
        name = self._get_full_key_name(name=name, local=local)
        try:
            return self._call("get_value", name=name, scope=scope, decrypt=bool(decrypt))
        except Exception as e:
            self._logger.debug("Failed to get datastore value %s: %s", name, e)
            return None

    def set_value(self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False):
        """Sets ``name`` to ``str(value)``; ``ttl`` in seconds. Returns True."""
        self._check_scope(scope)
        name = self._get_full_key_name(name=name, local=local)
        self._call(
            "set_value",
            name=name,
            value=str(value),
            ttl=int(ttl) if ttl else None,
            scope=scope,
            encrypt=bool(encrypt),
        )
        return True

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        """Deletes ``name``; False when it didn't exist or could not be deleted."""
        self._check_scope(scope)
        name = self._get_full_key_name(name=name, local=local)
        try:
            return bool(self._call("delete_value", name=name, scope=scope))
        except Exception:
            return False

    def _check_scope(self, scope):
        if scope not in _SCOPES:
            raise ValueError("Scope %s is unsupported." % (scope))

    def _get_full_key_name(self, name, local):
        if local:
            return self._get_local_key_name_prefix() + name
        return name

    def _get_full_key_prefix(self, local, prefix=None):
        if local:
            key_prefix = self._get_local_key_name_prefix()
            if prefix:
                key_prefix += prefix
            return key_prefix
        return prefix

    def _get_local_key_name_prefix(self):
        return "%s.%s%s" % (self._pack_name, self._class_name, self.DATASTORE_NAME_SEPARATOR)
