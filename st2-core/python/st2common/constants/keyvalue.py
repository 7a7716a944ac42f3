"""Datastore scopes and separators (StackStorm's ``st2common.constants.keyvalue``)."""

DATASTORE_PARENT_SCOPE = "st2kv"
DATASTORE_SCOPE_SEPARATOR = "."

SYSTEM_SCOPE = "system"
FULL_SYSTEM_SCOPE = "st2kv.system"
USER_SCOPE = "user"
FULL_USER_SCOPE = "st2kv.user"
ALL_SCOPE = "all"

ALLOWED_SCOPES = [SYSTEM_SCOPE, USER_SCOPE, FULL_SYSTEM_SCOPE, FULL_USER_SCOPE]

DATASTORE_KEY_SEPARATOR = ":"
USER_SEPARATOR = ":"
