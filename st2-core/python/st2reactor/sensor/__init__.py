"""Sensor base classes (StackStorm's ``st2reactor.sensor``)."""
