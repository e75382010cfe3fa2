"""The soak: Locker churn through the gateway under injected faults, a ledger of everything the
clients observed, and a checker that proves from the ledger and the services' own records that
no checked-in session kept access and no event was lost or applied twice (issue 17).

- `ledger`: what the simulated devices and apps saw, with timestamps.
- `churn`: the driver (devices cycling checkout → SSO → refreshes → face → checkin).
- `faults`: kill -9 of a service, broker kill, Redis kill / flush, relying party down, broker cut.
- `checker`: the verdict from the ledger, the audit log, the policy projection and the logouts.
- `run`: one soak (stack, churn, faults, verdict) — `python -m lanyard.harness.soak`, `make soak`,
  and the fast subset in `tests/soak`.
"""
