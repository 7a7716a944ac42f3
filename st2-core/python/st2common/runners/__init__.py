"""Runner-side helpers of the st2common shim (``base_action``, ``utils``)."""
