"""The IdP's device-session side: the read model of device sessions and entitlements, SSO by the
Locker SSO extension, one-hop revocation, fail-closed freshness and back-channel logout delivery.

Modules: `model` (pure transition and authorization rules), `readmodel` (Redis), `handlers`
(the consumer of lanyard.device-sessions.v1 and lanyard.entitlements.v1), `sso` (the
DeviceSessions port), `freshness` (fail closed when the consumer cannot show it is caught up),
`backchannel` (the durable logout-token queue and its worker), `wiring` (composition).
"""
