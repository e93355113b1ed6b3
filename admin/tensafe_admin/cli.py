"""`tensafe-admin`: the daily operations checklist's commands, on the tensafe-ops JSON API.

Every command takes `--output table|json|markdown` (a table on a terminal, JSON when piped),
`--tz`, `--url`, `--token` and `--prometheus-url` (see `tensafe_admin.base`). The commands live
in `morning` (Parts 1 to 4), `planning` (Steps 10 and 11, Part 7) and `alerting` (the webhook's
alerts, deliveries and maintenance windows).
"""

from tensafe_admin import alerting, morning, planning
from tensafe_admin.base import main

__all__ = ["alerting", "main", "morning", "planning"]
