"""HQ's settings: `Settings`, one frozen value (`frozen.py`), read from the variables and TOML
keys declared once in `table.py`."""

from logspace.settings.frozen import CONFIG_FILE_VARIABLE, Settings
from logspace.settings.table import SETTINGS, Setting, SettingsError

__all__ = ["CONFIG_FILE_VARIABLE", "SETTINGS", "Setting", "Settings", "SettingsError"]
