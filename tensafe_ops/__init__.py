"""tensafe-ops: TenSafe's operations exporter and Alertmanager router (process wiring)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tensafe-ops")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
