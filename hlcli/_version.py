"""hlcli's version, at the bottom of the house: every module that records it imports it from
here, never from the package's front door (``hlcli/__init__.py`` re-exports it)."""

__version__ = "0.1.0"
