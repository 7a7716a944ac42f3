"""core.uuid: return a new UUID string (uuid1 or uuid4)."""

import uuid

from st2common.runners.base_action import Action

__all__ = ["GenerateUUID"]


class GenerateUUID(Action):
    def run(self, uuid_type="uuid4"):
        if uuid_type == "uuid1":
            return str(uuid.uuid1())
        if uuid_type == "uuid4":
            return str(uuid.uuid4())
        raise ValueError("Unknown uuid_type. Only uuid1 and uuid4 are supported")
