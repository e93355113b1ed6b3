"""Runs the fake upstreams on loopback and points a Settings object at them."""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from operations.config import OperatorConfig
from tensafe_ops.auth import Auth
from tensafe_ops.clock import Clock, utcnow
from tensafe_ops.sandbox import (
    pagerduty_api,
    pagerduty_events_api,
    product,
    product_api,
    slack_api,
    stripe_api,
    usage_world,
    zendesk_api,
)
from tensafe_ops.sandbox.faults import Faults
from tensafe_ops.sandbox.product import ProductState, Scenario
from tensafe_ops.sandbox.world import World, advance
from tensafe_ops.settings import Settings
from webhook.config import DEFAULT_RECEIVER_PATH, ReceiverConfig, WebhookConfig
from webhook.targets import (
    DestinationsConfig,
    PagerDutyDestination,
    SlackDestination,
    ZendeskDestination,
)

# Credentials the fakes accept; real deployments never use these.
DEMO_CREDENTIALS: dict[str, dict[str, str]] = {
    "zendesk": {"email": "demo@tensafe.example", "token": "demo-zendesk-token"},
    "stripe": {"api_key": "sk_test_demo_tensafe"},
    "pagerduty": {"token": "demo-pagerduty-token"},
}
DEMO_FX_RATES = {"eur": 1.08, "jpy": 0.0067}
# Where the webhook half sends in the demo: Slack channels and a PagerDuty integration.
DEMO_SLACK_WEBHOOKS = {
    "incidents": "T0DEMO/B0INCIDENTS/demo-incidents-secret",
    "alerts": "T0DEMO/B0ALERTS/demo-alerts-secret",
    "oncall": "T0DEMO/B0ONCALL/demo-oncall-secret",
}
DEMO_ROUTING_KEY = "demo0routing0key0000000000000000"


def demo_api_auth(settings: Settings) -> Auth:
    """The webhook API's credentials in the demo: the configured ones, else none."""
    return settings.webhook.api_auth or "none"


def demo_receiver(settings: Settings) -> str:
    """The receiver path the demo's lines and its Alertmanager send to: /api/v1/alerts when
    configured (the demo configures it when no receiver is), else the first configured."""
    receivers = settings.webhook.receivers
    return DEFAULT_RECEIVER_PATH if DEFAULT_RECEIVER_PATH in receivers else next(iter(receivers))


def demo_has_auth(settings: Settings) -> bool:
    """Whether the demo's receiver (`demo_receiver`) asks for credentials (the configured)."""
    return settings.webhook.receivers[demo_receiver(settings)].auth != "none"


@dataclass
class RunningWorld:
    world: World
    usage_db_url: str
    faults: dict[str, Faults] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)
    ticker: "asyncio.Task[None] | None" = None
    slack: slack_api.SlackInbox = field(
        default_factory=lambda: slack_api.SlackInbox(webhooks=set(DEMO_SLACK_WEBHOOKS.values()))
    )
    product: ProductState = field(default_factory=lambda: product.new_state(time.time()))
    """The simulated TenSafe API's metrics and scenario (`urls["product"]`)."""
    clock: Clock = utcnow
    """The world's clock: what the world advances to, and what a demo exporter measures with."""

    def configure(self, settings: Settings) -> Settings:
        """Settings with every source pointed at the fakes (and demo mode on)."""
        exp = settings.exporter
        zd = DEMO_CREDENTIALS["zendesk"]
        update: dict[str, Any] = {
            "zendesk": exp.zendesk.model_copy(
                update={
                    "base_url": self.urls["zendesk"],
                    "email": zd["email"],
                    "token": SecretStr(zd["token"]),
                }
            ),
            "stripe": exp.stripe.model_copy(
                update={
                    "base_url": self.urls["stripe"],
                    "api_key": SecretStr(DEMO_CREDENTIALS["stripe"]["api_key"]),
                    # The simulated world bills some customers in EUR and JPY.
                    "mrr": exp.stripe.mrr.model_copy(
                        update={"fx_rates": exp.stripe.mrr.fx_rates or DEMO_FX_RATES}
                    ),
                }
            ),
            "pagerduty": exp.pagerduty.model_copy(
                update={
                    "base_url": self.urls["pagerduty"],
                    "token": SecretStr(DEMO_CREDENTIALS["pagerduty"]["token"]),
                }
            ),
            "usage": exp.usage.model_copy(update={"url": SecretStr(self.usage_db_url)}),
        }
        return settings.model_copy(
            update={
                "demo": True,
                "exporter": exp.model_copy(update=update),
                "webhook": self._webhook(settings),
                "operator": self._operator(settings),
            }
        )

    def _operator(self, settings: Settings) -> OperatorConfig:
        """The operator API on, with the credentials configured (by default the webhook
        API's, open when none are), posting to the demo #oncall; a client may name a
        Prometheus on loopback (tensafe-admin --prometheus-url)."""
        cfg = settings.operator
        return cfg.model_copy(
            update={
                "enabled": True,
                "api_auth": cfg.api_auth or demo_api_auth(settings),
                "prometheus_override": "loopback",
                "summary_slack": cfg.summary_slack or "oncall",
            }
        )

    def _webhook(self, settings: Settings) -> WebhookConfig:
        """The webhook half on, sending to the fakes, with the receivers and API credentials
        the config sets; without any, open (the start-up block says so)."""
        zd = DEMO_CREDENTIALS["zendesk"]
        destinations = DestinationsConfig(
            slack={
                name: SlackDestination(
                    webhook_url=SecretStr(f"{self.urls['slack']}/services/{path}")
                )
                for name, path in DEMO_SLACK_WEBHOOKS.items()
            },
            pagerduty={
                "default": PagerDutyDestination(
                    routing_key=SecretStr(DEMO_ROUTING_KEY),
                    events_url=f"{self.urls['pagerduty_events']}/v2/enqueue",
                )
            },
            zendesk={
                "default": ZendeskDestination(
                    base_url=self.urls["zendesk"], email=zd["email"], token=SecretStr(zd["token"])
                )
            },
        )
        return settings.webhook.model_copy(
            update={
                "enabled": True,
                "receivers": settings.webhook.receivers
                or {DEFAULT_RECEIVER_PATH: ReceiverConfig(auth="none")},
                "api_auth": demo_api_auth(settings),
                "destinations": destinations,
            }
        )

    def describe(self) -> dict[str, Any]:
        """What `tensafe-ops sandbox` prints: every URL, credential and inspection endpoint."""
        credentials: dict[str, dict[str, Any]] = {
            **DEMO_CREDENTIALS,
            "pagerduty_events": {"routing_key": DEMO_ROUTING_KEY},
            "slack": {
                "webhooks": {
                    name: f"{self.urls['slack']}/services/{path}"
                    for name, path in DEMO_SLACK_WEBHOOKS.items()
                }
            },
        }
        return {
            "urls": self.urls,
            "usage_db_url": self.usage_db_url,
            "credentials": credentials,
            "received": {name: f"{url}/_sandbox/received" for name, url in self.urls.items()},
        }

    async def stop(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        for runner in self.runners:
            await runner.cleanup()


async def _serve(app: web.Application, host: str) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


async def _tick(world: World, usage_db_url: str, clock: Clock, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        advance(world, clock())
        await usage_world.sync_database(world, usage_db_url)


async def start_world(
    world: World,
    *,
    usage_db_url: str,
    host: str = "127.0.0.1",
    faults: dict[str, Faults] | None = None,
    tick_every: float | None = None,
    clock: Clock = utcnow,
    scenario: Scenario | None = None,
    zendesk_export_window: float = 60.0,
) -> RunningWorld:
    """Serve `world` over HTTP on loopback; with `tick_every`, the world keeps changing,
    advanced to `clock()` every `tick_every` seconds (without it, the world is frozen).
    Zendesk's export takes 10 requests per `zendesk_export_window` seconds (Zendesk: 60;
    shorter only where the exporter is paced faster in step, e.g. tests and benchmarks).

    The simulated TenSafe API (`urls["product"]`) runs on the wall clock whatever `clock`
    says: Prometheus computes its rates in real time.
    """
    running = RunningWorld(world=world, usage_db_url=usage_db_url, faults=faults or {}, clock=clock)
    if scenario is not None:
        product.set_scenario(running.product, scenario, time.time())
    apps = {
        "zendesk": zendesk_api.make_app(
            world,
            running.faults.setdefault("zendesk", Faults()),
            credentials=DEMO_CREDENTIALS["zendesk"],
            limit_window_seconds=zendesk_export_window,
        ),
        **{
            name: module.make_app(
                world,
                running.faults.setdefault(name, Faults()),
                credentials=DEMO_CREDENTIALS[name],
            )
            for name, module in (("stripe", stripe_api), ("pagerduty", pagerduty_api))
        },
    }
    for name, app in apps.items():
        runner, url = await _serve(app, host)
        running.runners.append(runner)
        running.urls[name] = url
    served_apps = {
        "slack": slack_api.make_app(
            running.faults.setdefault("slack", Faults()), inbox=running.slack
        ),
        # Pages open incidents in the world the REST fake serves.
        "pagerduty_events": pagerduty_events_api.make_app(
            running.faults.setdefault("pagerduty_events", Faults()),
            routing_keys={DEMO_ROUTING_KEY},
            world=world,
        ),
        "product": product_api.make_app(running.product),
    }
    for name, app in served_apps.items():
        runner, url = await _serve(app, host)
        running.runners.append(runner)
        running.urls[name] = url
    await usage_world.write_database(world, usage_db_url)
    if tick_every:
        running.ticker = asyncio.create_task(_tick(world, usage_db_url, clock, tick_every))
    return running


__all__ = ["DEMO_CREDENTIALS", "RunningWorld", "start_world"]
