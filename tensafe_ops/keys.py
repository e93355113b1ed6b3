"""Every aiohttp AppKey of the process lives here (exporter and webhook import only this)."""

from aiohttp import web
from prometheus_client import CollectorRegistry

from tensafe_ops.auth import Credentials
from tensafe_ops.clock import Clock
from tensafe_ops.storage import StateStore

CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")
"""The wall clock of the process (webhook SLAs, operational timestamps)."""
EXPORTER_CLOCK_KEY: web.AppKey[Clock] = web.AppKey("exporter_clock")
"""What the exporter measures ages and windows with: the wall clock, or in demo mode the
simulated world's clock (docs/world-file.md)."""
STATE_STORE_KEY = web.AppKey("state_store", StateStore)
SELF_REGISTRY_KEY = web.AppKey("self_registry", CollectorRegistry)
"""Live process metrics (small; rendered on every scrape)."""
DEMO_KEY = web.AppKey("demo", bool)
API_READ_AUTH_KEY = web.AppKey("api_read_auth", Credentials)
"""Read-only credentials (operator.read_auth): accepted by every API's GET endpoints."""
