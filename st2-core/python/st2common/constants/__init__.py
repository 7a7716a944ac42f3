"""Constants of the st2common shim."""
