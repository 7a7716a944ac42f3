"""The part of StackStorm's ``st2reactor`` that pack sensors import."""
