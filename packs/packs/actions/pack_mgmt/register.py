"""packs.load / packs.register: register pack content through the API.

`packs.load` passes `register` ("actions,rules,..."); `packs.register` passes `types` (a list)
and `fail_on_failure`. Both end up in POST /api/v1/packs/register.
"""

from st2common.runners.base_action import Action

from packs_common import ApiClient

__all__ = ["St2RegisterAction"]

# Old plural names accepted by packs.load, mapped to what the API expects.
COMPATIBILITY_TRANSFORMATIONS = {
    "runners": "runner",
    "triggers": "trigger",
    "sensors": "sensor",
    "actions": "action",
    "rules": "rule",
    "rule_types": "rule_type",
    "aliases": "alias",
    "policy_types": "policy_type",
    "policies": "policy",
    "configs": "config",
}


class St2RegisterAction(Action):
    def run(self, register=None, packs=None, types=None, fail_on_failure=True):
        if types is None:
            types = [t.strip() for t in (register or "").split(",") if t.strip()]
        types = [COMPATIBILITY_TRANSFORMATIONS.get(t, t) for t in types]

        body = {"fail_on_failure": fail_on_failure}
        if types:
            body["types"] = types
        if packs:
            body["packs"] = list(packs)

        self.logger.debug("Registering content: %s", body)
        return ApiClient().request("POST", "/packs/register", body)
