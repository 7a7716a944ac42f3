"""Utilities of the st2common shim (``shell``, ``jsonify``)."""
