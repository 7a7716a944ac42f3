"""core.inject_trigger: dispatch a trigger instance through the API's generic webhook.

The action posts `{trigger, payload}` to `/api/v1/webhooks/st2` with the API client the
action service hands out, so the trigger instance goes through the rules engine like any
other. The webhook endpoint is asynchronous: success here means the API accepted the
trigger, not that a rule matched it.
"""

from st2common.runners.base_action import Action

__all__ = ["InjectTriggerAction"]


class InjectTriggerAction(Action):
    def run(self, trigger=None, trigger_name=None, payload=None, trace_tag=None):
        payload = payload or {}

        if trigger and trigger_name:
            raise ValueError(
                "Parameters `trigger` and `trigger_name` are mutually exclusive."
            )
        if not trigger and not trigger_name:
            raise ValueError("You must include the `trigger_name` parameter.")

        trigger = trigger or trigger_name

        # The datastore service owns the API client (it is built from the action's
        # ST2_ACTION_API_URL / ST2_ACTION_AUTH_TOKEN environment).
        client = self.action_service.datastore_service.get_api_client()

        self.logger.debug('Injecting trigger "%s" with payload="%s"', trigger, payload)
        return client.webhooks.post_generic_webhook(
            trigger=trigger, payload=payload, trace_tag=trace_tag
        )
