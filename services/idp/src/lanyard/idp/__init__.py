"""Lanyard idp service. The OpenID Provider: issuers, keys, directory, app profiles, OIDC sessions and tokens."""
