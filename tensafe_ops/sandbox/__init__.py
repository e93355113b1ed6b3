"""The simulated upstream world: fake Zendesk, Stripe, PagerDuty and usage DB servers."""
