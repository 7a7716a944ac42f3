"""examples.hello_python: greet `name` with the pack's configured greeting."""

from st2common.runners.base_action import Action

__all__ = ["HelloAction"]


class HelloAction(Action):
    def run(self, name, fail=False):
        greeting = (self.config or {}).get("greeting", "Hello")
        message = "%s, %s!" % (greeting, name)
        self.logger.info("Greeting: %s", message)
        if fail:
            # A (status, result) tuple sets the execution status explicitly.
            return (False, {"greeting": message, "length": len(message)})
        return {"greeting": message, "length": len(message)}
