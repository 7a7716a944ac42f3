"""Services of the st2common shim (``datastore``)."""
