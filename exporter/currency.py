"""Minor units of the currencies Stripe bills in: how many decimals an API amount carries.

Stripe states every amount as an integer in the currency's minor unit, and its exponent is the
ISO 4217 minor-unit count *as Stripe uses it* (https://docs.stripe.com/currencies, "Minor units
in API amounts"): two decimals unless the currency is on one of Stripe's two lists below.

Where Stripe's API differs from ISO 4217 it is Stripe's number that counts here:
- ISK, HUF and TWD charge whole units only, yet stay two-decimal in the API (ISK 100 = 1 krona:
  https://support.stripe.com/questions/deprecation-of-fractional-isk-charges-and-refunds);
  ISO 4217 gives ISK 0.
- MGA has ISO exponent 2 but is zero-decimal at Stripe.
- Currencies Stripe does not list (e.g. ISO 4-decimal CLF, UYW) are not billable there; they fall
  back to two decimals like every unlisted code.
"""

ZERO_DECIMAL = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
        "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
"""Stripe's zero-decimal currencies: 500 JPY is `amount: 500`."""

THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
"""Stripe's three-decimal currencies: 5.124 KWD is `amount: 5124` (Stripe rounds to tens)."""

DEFAULT_EXPONENT = 2


def exponent(currency: str) -> int:
    """Decimals of `currency`'s API amounts (ISO 4217 minor units as Stripe uses them)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return DEFAULT_EXPONENT


def minor_to_major(amount: float, currency: str) -> float:
    """A Stripe amount (minor units) in major units: cents to dollars, fils to dinars."""
    return amount / float(10 ** exponent(currency))
