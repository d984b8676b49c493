"""helical-runner: discover -> load -> prepare -> embed -> classify -> write, one dataset at a time."""

__version__ = "0.1.0"
