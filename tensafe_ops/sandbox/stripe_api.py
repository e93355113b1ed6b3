"""Fake Stripe API over the simulated world: /v1/subscriptions, customers, invoices, events.

Answers like Stripe: Bearer secret-key auth, lists as {object: "list", data, has_more, url},
newest first, `limit` 1-100 (default 10), `starting_after` / `ending_before` cursors,
`created[gte|gt|lte|lt]`, `expand[]` (ids unless expanded, at most four levels:
`stripe_expand.py`), events kept 30 days and never expanded, and Stripe's error object
`{"error": {"type", "message", "code"?, "param"?}}` for 4xx/5xx (including injected faults).
`/v1/prices/{id}` and `/v1/coupons/{id}` (outside the trimmed contract) serve one price or
coupon; their `tiers` / `applies_to` / `currency_options` only with `expand[]`.
"""

import heapq
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tensafe_ops.sandbox.faults import Faults, fault_middleware
from tensafe_ops.sandbox.received import inspectable
from tensafe_ops.sandbox.stripe_expand import LIST, ExpandError, Lookup, expand_tree, render
from tensafe_ops.sandbox.stripe_world import EVENT_RETENTION
from tensafe_ops.sandbox.world import World

Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_ERRORS = (400, 401, 404, 429)
DEFAULT_SUBSCRIPTION_STATUSES = ("active", "past_due", "trialing", "unpaid", "paused", "incomplete")


class StripeError(Exception):
    def __init__(self, status: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def error_response(status: int, message: str, **extra: str) -> web.Response:
    """Stripe's error object; 5xx are `api_error`, the rest `invalid_request_error`."""
    body = {
        "error": {
            "type": "invalid_request_error" if status in CLIENT_ERRORS else "api_error",
            "message": message,
            **extra,
        }
    }
    if status == 429:
        body["error"]["code"] = "rate_limit"
    return web.json_response(body, status=status, headers={"Request-Id": _request_id()})


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:14]}"


def _masked(key: str) -> str:
    return f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"


def _values(request: web.Request, name: str) -> list[str]:
    """`name`, `name[]` and `name[0]`, `name[1]`... as Stripe's form encoding sends lists."""
    return [
        value
        for key, value in request.query.items()
        if key in (name, f"{name}[]")
        or (key.startswith(f"{name}[") and key[len(name) + 1 : -1].isdigit())
    ]


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", param=name) from None


def _created_filter(request: web.Request) -> Callable[[Obj], bool]:
    bounds = {op: _int_param(request, f"created[{op}]") for op in ("gte", "gt", "lte", "lt")}
    exact = _int_param(request, "created")

    def keep(obj: Obj) -> bool:
        created = int(obj["created"])
        return not (
            (exact is not None and created != exact)
            or (bounds["gte"] is not None and created < bounds["gte"])
            or (bounds["gt"] is not None and created <= bounds["gt"])
            or (bounds["lte"] is not None and created > bounds["lte"])
            or (bounds["lt"] is not None and created >= bounds["lt"])
        )

    return keep


def _position(obj: Obj) -> tuple[int, str]:
    return int(obj["created"]), str(obj["id"])


def _page(
    request: web.Request, objects: list[Obj], kind: str, every: list[Obj] | None = None
) -> tuple[list[Obj], bool]:
    """Newest first; `limit`, and `starting_after` (older) or `ending_before` (newer) cursors.

    A cursor is a position: it may name an object the filters leave out (any of `every`).
    Linear per page (no full sort), so paging through 10k objects stays fast.
    """
    limit = _int_param(request, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
    after, before = request.query.get("starting_after"), request.query.get("ending_before")
    cursor, param = (before, "ending_before") if before is not None else (after, "starting_after")
    if cursor is None:
        page = heapq.nlargest(limit + 1, objects, key=_position)
        return page[:limit], len(page) > limit
    found = next((o for o in (objects if every is None else every) if o["id"] == cursor), None)
    if found is None:
        raise StripeError(400, f"No such {kind}: '{cursor}'", code="resource_missing", param=param)
    mark = _position(found)
    if before is not None:
        newer = heapq.nsmallest(limit + 1, (o for o in objects if _position(o) > mark), _position)
        return sorted(newer[:limit], key=_position, reverse=True), len(newer) > limit
    older = heapq.nlargest(limit + 1, (o for o in objects if _position(o) < mark), _position)
    return older[:limit], len(older) > limit


def _list(request: web.Request, data: list[Obj], has_more: bool) -> web.Response:
    body = {"object": "list", "data": data, "has_more": has_more, "url": request.path}
    return web.json_response(body, headers={"Request-Id": _request_id()})


def _expansions(request: web.Request, kind: str) -> dict[str, Any]:
    try:
        return expand_tree(_values(request, "expand"), kind)
    except ExpandError as exc:
        raise StripeError(400, exc.message, **exc.extra) from None


_LISTS = {
    "coupon": "coupons",
    "customer": "customers",
    "invoice": "invoices",
    "price": "prices",
    "product": "products",
    "subscription": "subscriptions",
}


def world_lookup(world: World) -> Lookup:
    """Finds the objects the world refers to by id (indexed on first use, per request).

    Coupons are also found inside the discounts that embed them (a world file may list
    coupons only there), and discounts inside the subscriptions and items that hold them.
    """
    indexes: dict[str, dict[str, Obj]] = {}

    def index(kind: str) -> dict[str, Obj]:
        found = {o["id"]: o for o in world.stripe.get(_LISTS.get(kind, ""), [])}
        if kind in ("coupon", "discount"):
            for discount in _embedded_discounts(world):
                if kind == "discount":
                    found.setdefault(discount["id"], discount)
                elif isinstance(coupon := (discount.get("source") or {}).get("coupon"), dict):
                    found.setdefault(coupon["id"], coupon)
        return found

    def lookup(kind: str, object_id: str) -> Obj | None:
        if kind not in indexes:
            indexes[kind] = index(kind)
        return indexes[kind].get(object_id)

    return lookup


def _embedded_discounts(world: World) -> list[Obj]:
    found = []
    for sub in world.stripe.get("subscriptions", []):
        holders = [sub, *sub["items"]["data"]]
        found += [d for h in holders for d in h.get("discounts") or [] if isinstance(d, dict)]
    return found


def make_app(world: World, faults: Faults, *, credentials: "dict[str, str]") -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return error_response(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth "
                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        given = header[7:].strip()
        if given != credentials["api_key"]:
            return error_response(401, f"Invalid API Key provided: {_masked(given)}")
        try:
            return await handler(request)
        except StripeError as exc:
            return error_response(exc.status, exc.message, **exc.extra)

    app = web.Application(middlewares=[fault_middleware(faults, error_response), auth])
    inspectable(app)

    async def subscriptions(request: web.Request) -> web.Response:
        statuses = set(_values(request, "status")) or set(DEFAULT_SUBSCRIPTION_STATUSES)
        customer, price = request.query.get("customer"), request.query.get("price")
        created = _created_filter(request)
        chosen = [
            s
            for s in world.stripe.get("subscriptions", [])
            if ("all" in statuses or s["status"] in statuses)
            and (customer is None or s["customer"] == customer)
            and (price is None or any(i["price"]["id"] == price for i in s["items"]["data"]))
            and created(s)
        ]
        tree = _expansions(request, LIST + "subscription")
        page, more = _page(request, chosen, "subscription")
        return _list(request, _rendered(page, "subscription", tree.get("data"), world), more)

    async def customers(request: web.Request) -> web.Response:
        created = _created_filter(request)
        chosen = [c for c in world.stripe.get("customers", []) if created(c)]
        tree = _expansions(request, LIST + "customer")
        page, more = _page(request, chosen, "customer")
        return _list(request, _rendered(page, "customer", tree.get("data"), world), more)

    async def customer(request: web.Request) -> web.Response:
        return _one(world, request, "customer")

    async def invoices(request: web.Request) -> web.Response:
        status = request.query.get("status")
        customer_id = request.query.get("customer")
        subscription = request.query.get("subscription")
        created = _created_filter(request)
        chosen = [
            i
            for i in world.stripe.get("invoices", [])
            if (status is None or i["status"] == status)
            and (customer_id is None or i["customer"] == customer_id)
            and (subscription is None or _invoice_subscription(i) == subscription)
            and created(i)
        ]
        tree = _expansions(request, LIST + "invoice")
        page, more = _page(request, chosen, "invoice")
        return _list(request, _rendered(page, "invoice", tree.get("data"), world), more)

    async def invoice(request: web.Request) -> web.Response:
        return _one(world, request, "invoice")

    async def events(request: web.Request) -> web.Response:
        types = set(_values(request, "types")) | set(_values(request, "type"))
        horizon = world.now.timestamp() - EVENT_RETENTION.total_seconds()
        created = _created_filter(request)
        retained = [e for e in world.stripe.get("events", []) if e["created"] >= horizon]
        chosen = [
            e for e in retained if created(e) and (not types or _type_matches(e["type"], types))
        ]
        _expansions(request, LIST + "event")
        page, more = _page(request, chosen, "event", retained)
        return _list(request, [_render_event(e, world_lookup(world)) for e in page], more)

    async def price(request: web.Request) -> web.Response:
        return _one(world, request, "price")

    async def coupon(request: web.Request) -> web.Response:
        return _one(world, request, "coupon")

    app.router.add_get("/v1/subscriptions", subscriptions)
    app.router.add_get("/v1/customers", customers)
    app.router.add_get("/v1/customers/{id}", customer)
    app.router.add_get("/v1/invoices", invoices)
    app.router.add_get("/v1/invoices/{id}", invoice)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/prices/{id}", price)
    app.router.add_get("/v1/coupons/{id}", coupon)
    return app


def _invoice_subscription(invoice: Obj) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or invoice.get("subscription")
    return None if subscription is None else str(subscription)


def _type_matches(kind: str, wanted: set[str]) -> bool:
    return any(kind == w or (w.endswith("*") and kind.startswith(w[:-1])) for w in wanted)


def _rendered(objects: list[Obj], kind: str, tree: Any, world: World) -> list[Obj]:
    lookup = world_lookup(world)
    return [render(o, kind, tree or {}, lookup) for o in objects]


def _render_event(event: Obj, lookup: Lookup) -> Obj:
    """Event payloads are never expanded: discounts and coupons as ids, no price tiers."""
    data = event["data"]
    kind = str(data["object"].get("object"))
    rendered = {"object": render(data["object"], kind, {}, lookup)}
    if "previous_attributes" in data:
        rendered["previous_attributes"] = render(data["previous_attributes"], kind, {}, lookup)
    return {**event, "data": rendered}


def _one(world: World, request: web.Request, kind: str) -> web.Response:
    """GET /v1/<kind>s/{id}, rendered with the request's expansions."""
    object_id = request.match_info["id"]
    tree = _expansions(request, kind)
    lookup = world_lookup(world)
    found = lookup(kind, object_id)
    if found is None:
        raise StripeError(
            404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id"
        )
    body = render(found, kind, tree, lookup)
    return web.json_response(body, headers={"Request-Id": _request_id()})
