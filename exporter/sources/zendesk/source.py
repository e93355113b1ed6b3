"""The Zendesk source: incremental ticket sync into the state DB, metrics from that state.

Sync: the cursor-based incremental export with `include=metric_sets`. The first sync
starts `LOOKBACK` ago; afterwards each refresh continues from the persisted cursor, so
a steady-state refresh is one request and a restart re-exports nothing. A page's tickets
are stored before the cursor that follows them, so a failure mid-pagination repeats at
most that page (tickets are keyed by id: repeating never double-counts).

Page size: `page_size` applies to the first page of a sync (`start_time`); zenpy does not
forward `per_page` with a cursor, so later pages are Zendesk's default 1000 (its maximum).

Kept per ticket: `exporter.sla.TicketState`. Tickets that can no longer count (solved
or closed, created over 28 days ago, not solved in the last 24 hours and not first responded
to in the last 7 days, the longest SLA-achievement window) are dropped
from memory and the state DB; if one is reopened the export brings it back.
Organizations (the account join) are re-listed every `ORGANIZATIONS_MAX_AGE`, or sooner
(at most every `ORGANIZATIONS_RECHECK`) when a ticket names an unknown organization.
"""

import dataclasses
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from exporter import sla
from exporter.config import ZendeskConfig
from exporter.sla import TicketState
from exporter.sources.base import SourceContext, SourceResult, off_loop
from exporter.sources.zendesk import metrics
from exporter.sources.zendesk.client import SOURCE, ExportPage, ZendeskClient
from exporter.sources.zendesk.metrics import AccountMap
from tensafe_ops.http import UpstreamError
from tensafe_ops.log import get_logger

log = get_logger("tensafe_ops.exporter.zendesk")

LOOKBACK = 90 * 86400.0
"""How far back the first sync starts (open tickets untouched for longer are missed)."""
KEEP_CREATED = 28 * 86400.0
"""Done tickets created within this window still count (tickets_14d / tickets_prev_14d)."""
ORGANIZATIONS_MAX_AGE = 3600.0
ORGANIZATIONS_RECHECK = 300.0
SYNC_BUDGET = 0.75
"""Share of the refresh timeout spent paging before a refresh stops and reports."""

CURSOR_NS, TICKET_NS, ORG_NS = "zendesk.cursor", "zendesk.ticket", "zendesk.organizations"


def is_relevant(ticket: TicketState, now: float) -> bool:
    if sla.is_open(ticket):
        return True
    if ticket.status not in sla.DONE_STATUSES:  # e.g. "deleted"
        return False
    return (
        ticket.created_at >= now - KEEP_CREATED
        or sla.solved_since(ticket, now - 86400.0)
        or sla.responded_since(ticket, now - max(sla.SLA_WINDOWS.values()))
    )


def stale_ids(tickets: Iterable[TicketState], now: float) -> list[int]:
    """The tickets that can no longer count and are dropped."""
    return [t.id for t in tickets if not is_relevant(t, now)]


def names_unknown_organization(tickets: Iterable[TicketState], accounts: AccountMap) -> bool:
    known = accounts.accounts
    return any(t.organization_id is not None and t.organization_id not in known for t in tickets)


def page_states(
    page: ExportPage, tags: "SharedTags | None" = None, now: float | None = None
) -> list[TicketState]:
    metric_by_ticket = {m["ticket_id"]: m for m in page.metric_sets if "ticket_id" in m}
    states = [sla.ticket_state(t, metric_by_ticket.get(t["id"]), now) for t in page.tickets]
    return states if tags is None else [tags.share(s) for s in states]


class SharedTags:
    """One tuple per distinct tag combination: 50,000 held tickets use a few hundred, and a
    tuple per ticket would cost ~2.5 MB. Forgets everything past `limit` combinations (only
    sharing is lost then), so it cannot grow without bound."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.known: dict[tuple[str, ...], tuple[str, ...]] = {}

    def share(self, state: TicketState) -> TicketState:
        if len(self.known) >= self.limit:
            self.known.clear()
        tags = self.known.setdefault(state.tags, state.tags)
        return state if tags is state.tags else dataclasses.replace(state, tags=tags)


class ZendeskSource:
    name = SOURCE

    def __init__(
        self, cfg: ZendeskConfig, context: SourceContext, *, backoff_base: float = 1.0
    ) -> None:
        self.cfg = cfg
        self.context = context
        self.client = ZendeskClient(cfg, context.stats, backoff_base=backoff_base)
        self.tickets: dict[int, TicketState] | None = None
        self.tags = SharedTags()
        self.cursor: dict[str, Any] | None = None
        self.accounts: AccountMap | None = None
        self.accounts_fetched_at = 0.0

    async def aclose(self) -> None:
        self.client.close()

    async def refresh(self, now: datetime) -> SourceResult:
        timestamp = now.timestamp()
        if self.tickets is None:
            await self._load()
        await self._sync(timestamp, time.monotonic() + self.cfg.timeout * SYNC_BUDGET)
        await self._refresh_accounts(timestamp)
        await self._prune(timestamp)
        assert self.tickets is not None and self.accounts is not None
        # A few hundred ms of CPU over ~50,000 tickets, in a worker thread. It gets a list of the
        # (frozen) ticket states, not the dict the next sync updates, and the AccountMap,
        # which is replaced, never changed: nothing the thread reads changes under it.
        families, facts, overview = await off_loop(
            metrics.build, list(self.tickets.values()), self.accounts, self.cfg, timestamp
        )
        return SourceResult(families, facts, overview=overview)

    async def _load(self) -> None:
        state = self.context.state
        stored = await state.get_all(TICKET_NS)
        self.tickets = {
            int(k): self.tags.share(TicketState.from_json(v)) for k, v in stored.items()
        }
        del stored
        self.cursor = await state.get(CURSOR_NS, "tickets")
        saved = await state.get(ORG_NS, "map")
        if saved is not None:
            self.accounts = AccountMap.from_json(saved["map"])
            self.accounts_fetched_at = float(saved["fetched_at"])
        log.info("zendesk_state_loaded", tickets=len(self.tickets), resumed=self.cursor is not None)

    async def _sync(self, now: float, deadline: float) -> None:
        assert self.tickets is not None
        cursor = self.cursor or {"cursor": None, "start_time": int(now - LOOKBACK), "synced": False}
        pages = 0
        while True:
            page = await self.client.export_page(cursor["cursor"], cursor["start_time"])
            pages += 1
            states = page_states(page, self.tags, now)
            keep = {s.id: s for s in states if is_relevant(s, now)}
            drop = [str(s.id) for s in states if s.id not in keep and s.id in self.tickets]
            cursor = {
                **cursor,
                "cursor": page.after_cursor or cursor["cursor"],
                "synced": cursor["synced"] or page.end_of_stream,
            }
            # Tickets first, then the cursor past them: a crash in between repeats the page.
            await self.context.state.put_many(
                TICKET_NS, {str(i): s.to_json() for i, s in keep.items()}
            )
            if drop:
                await self.context.state.delete_many(TICKET_NS, drop)
            await self.context.state.put(CURSOR_NS, "tickets", cursor)
            self.tickets.update(keep)
            for key in drop:
                self.tickets.pop(int(key), None)
            self.cursor = cursor
            self._progress(page, cursor, now, pages)
            if page.end_of_stream:
                return
            if time.monotonic() > deadline:
                if cursor["synced"]:
                    log.info("zendesk_catching_up", pages=pages)  # values lag, but are whole
                    return
                raise UpstreamError(
                    "rate_limited",
                    "initial Zendesk sync still running (paced by the export rate limit); "
                    "it continues from its cursor on the next refresh",
                )

    def _progress(self, page: ExportPage, cursor: dict[str, Any], now: float, pages: int) -> None:
        stats = self.context.stats
        if cursor["synced"]:
            stats.set_progress(SOURCE, 1, 1)
            return
        total = max(1, int(now - cursor["start_time"]))
        reached = max((int(t.get("generated_timestamp") or 0) for t in page.tickets), default=0)
        done = min(total, max(0, reached - int(cursor["start_time"])))
        stats.set_progress(SOURCE, done, total)
        log.info(
            "zendesk_initial_sync_progress",
            pages=pages,
            tickets=len(self.tickets or {}),
            share=round(done / total, 3),
        )

    async def _refresh_accounts(self, now: float) -> None:
        assert self.tickets is not None
        age = now - self.accounts_fetched_at
        if self.accounts is not None and age < ORGANIZATIONS_MAX_AGE:
            if age < ORGANIZATIONS_RECHECK:
                return
            # A scan of every held ticket: in a worker thread, over a list of the frozen states.
            tickets = list(self.tickets.values())
            if not await off_loop(names_unknown_organization, tickets, self.accounts):
                return
        # Only (id, account) is kept of each page: 20,000 whole organizations never pile up.
        claims: list[tuple[int, str | None]] = []
        key = self.cfg.account_key
        async for page in self.client.organization_pages():
            claims += [(int(o["id"]), metrics.organization_account(o, key)) for o in page]
        self.accounts = metrics.account_map(claims)
        self.accounts_fetched_at = now
        await self.context.state.put(
            ORG_NS, "map", {"map": self.accounts.to_json(), "fetched_at": now}
        )
        log.info(
            "zendesk_organizations_listed",
            organizations=len(claims),
            missing_id=self.accounts.missing_id,
            duplicate_id=self.accounts.duplicate_id,
        )

    async def _prune(self, now: float) -> None:
        assert self.tickets is not None
        # A relevance check per held ticket: in a worker thread, over a list of the frozen states.
        stale = await off_loop(stale_ids, list(self.tickets.values()), now)
        if stale:
            await self.context.state.delete_many(TICKET_NS, _keys(stale))
            for ticket_id in stale:
                del self.tickets[ticket_id]


def _keys(ids: Iterable[int]) -> list[str]:
    return [str(i) for i in ids]
