"""Provider adapters: pure translators between a provider's API and our dataclasses.

Rules (docs/architecture.md, "Adapters are pure"): no models, no other app, no settings; an
adapter receives a credentials dataclass (and an HTTP session where it speaks HTTP itself) and
returns dataclasses. It never sleeps or retries; it raises one of the errors in `base`, and
sync.services decides.
"""
