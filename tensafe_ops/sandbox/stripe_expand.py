"""Stripe's `expand[]` semantics for the fake Stripe: ids unless a request expands them.

https://docs.stripe.com/api/expanding_objects: an expandable field is an object's id unless
the request names it in `expand[]`; some fields (a price's `tiers`, a coupon's `applies_to`
and `currency_options`) are left out of the response unless expanded; paths nest with dots,
list requests start at `data`, and a path has at most four levels
(`data.items.data.discounts` is the deepest a subscription listing can reach an item's
discounts, so their coupons stay ids). An unknown path is a 400, a deeper one a 400 with
code `property_expansion_max_depth`, as Stripe answers. Event payloads are never expanded.

The world stores objects expanded (discounts inside subscriptions, coupons inside discounts)
or as ids of objects in its lists; `render` turns either into what Stripe would send.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 4

Obj = dict[str, Any]


class ExpandError(Exception):
    """A request's `expand[]` that Stripe would refuse (400 invalid_request_error)."""

    def __init__(self, message: str, **extra: str) -> None:
        super().__init__(message)
        self.message, self.extra = message, extra


@dataclass(frozen=True)
class Ref:
    """An id unless expanded, then the `kind` object (a list of them when the value is)."""

    kind: str


@dataclass(frozen=True)
class Embedded:
    """Always present as an object of `kind`, whose own expandable fields follow the path."""

    kind: str


@dataclass(frozen=True)
class Included:
    """Not in the response unless expanded."""


Field = Ref | Embedded | Included
INCLUDED = Included()
LIST = "list:"
"""Prefix of a list object's kind: `list:subscription` is {object: list, data: [...]}."""

SCHEMA: dict[str, dict[str, Field]] = {
    "subscription": {
        "application": Ref("application"),
        "customer": Ref("customer"),
        "default_payment_method": Ref("payment_method"),
        "default_source": Ref("source"),
        "discount": Ref("discount"),
        "discounts": Ref("discount"),
        "items": Embedded(LIST + "subscription_item"),
        "latest_invoice": Ref("invoice"),
        "on_behalf_of": Ref("account"),
        "pending_setup_intent": Ref("setup_intent"),
        "schedule": Ref("subscription_schedule"),
        "test_clock": Ref("test_helpers.test_clock"),
    },
    "subscription_item": {"discounts": Ref("discount"), "price": Embedded("price")},
    "price": {
        "currency_options": INCLUDED,
        "product": Ref("product"),
        "tiers": INCLUDED,
    },
    "discount": {
        "customer": Ref("customer"),
        "promotion_code": Ref("promotion_code"),
        "source": Embedded("discount_source"),
    },
    "discount_source": {"coupon": Ref("coupon")},
    "coupon": {"applies_to": INCLUDED, "currency_options": INCLUDED},
    "customer": {"default_source": Ref("source"), "test_clock": Ref("test_helpers.test_clock")},
    "invoice": {
        "customer": Ref("customer"),
        "default_payment_method": Ref("payment_method"),
        "discounts": Ref("discount"),
        "subscription": Ref("subscription"),
        "test_clock": Ref("test_helpers.test_clock"),
    },
    "product": {"default_price": Ref("price")},
    "event": {},
}


def fields(kind: str) -> dict[str, Field]:
    if kind.startswith(LIST):
        return {"data": Embedded(kind.removeprefix(LIST))}
    return SCHEMA.get(kind, {})


Tree = dict[str, "Tree"]


def expand_tree(paths: Iterable[str], kind: str) -> Tree:
    """The request's `expand[]` paths as a tree, checked against `kind` as Stripe checks them."""
    tree: Tree = {}
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise ExpandError(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}",
                code="property_expansion_max_depth",
                param="expand",
            )
        node, current = tree, kind
        for depth, part in enumerate(parts):
            spec = fields(current).get(part)
            leaf = depth == len(parts) - 1
            if spec is None or (isinstance(spec, Included) and not leaf):
                shown = ".".join(parts[: depth + 1])
                raise ExpandError(f"This property cannot be expanded ({shown}).", param="expand")
            node = node.setdefault(part, {})
            current = "" if isinstance(spec, Included) else spec.kind
    return tree


Lookup = Callable[[str, str], Obj | None]
"""(kind, id) -> the stored object, to expand a reference the world keeps as an id."""


def render(value: Mapping[str, Any], kind: str, tree: Tree, lookup: Lookup) -> Obj:
    """`value` as Stripe sends it for a request whose expansions below it are `tree`.

    Builds new dicts only where something changes; the rest is shared with the world (the
    response is serialised at once, before the world can change).
    """
    specs = fields(kind)
    out: Obj = {}
    for key, item in value.items():
        spec = specs.get(key)
        if spec is None:
            out[key] = item
        elif isinstance(spec, Included):
            if key in tree:
                out[key] = item
        else:
            out[key] = _each(item, spec, tree.get(key), lookup)
    return out


def _each(value: Any, spec: Ref | Embedded, tree: Tree | None, lookup: Lookup) -> Any:
    """One value or each value of a list, embedded, expanded or collapsed to its id."""
    if isinstance(value, list | tuple):
        return [_one(v, spec, tree, lookup) for v in value]
    return None if value is None else _one(value, spec, tree, lookup)


def _one(value: Any, spec: Ref | Embedded, tree: Tree | None, lookup: Lookup) -> Any:
    if isinstance(spec, Embedded):
        return render(value, spec.kind, tree or {}, lookup) if isinstance(value, Mapping) else value
    if tree is None:  # not expanded: the id
        return value.get("id") if isinstance(value, Mapping) else value
    obj = value if isinstance(value, Mapping) else lookup(spec.kind, str(value))
    return value if obj is None else render(obj, spec.kind, tree, lookup)


__all__ = ["MAX_DEPTH", "ExpandError", "Lookup", "expand_tree", "render"]
