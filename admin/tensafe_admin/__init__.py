"""tensafe-admin: the daily operations checklist as commands, on the tensafe-ops JSON API."""

__version__ = "0.1.0"
