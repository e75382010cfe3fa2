"""rover-demo: a relying party as a hospital's web app would be, signing in through Lanyard.

It is deliberately a stranger to Lanyard's code (import-linter forbids every `lanyard.*` import):
only discovery, authlib's Starlette OIDC client (code + PKCE S256, state, nonce, ID-token
validation against the JWKS), token introspection as a confidential client, and OIDC
Back-Channel Logout 1.0, validated here with joserfc.

    GET  /                    who is signed in, each sign-in's token status, when and why it ended
    GET  /login               authorization request (redirect to the issuer)
    GET  /callback            code exchange; the ID token is validated; a sign-in is recorded
    POST /backchannel-logout  logout token (BCL §2.6 checks); the sign-ins of its sid end
    GET  /api/me              this browser's sign-in, with a live introspection of its access token
    GET  /api/sign-ins        every sign-in (JSON)
    GET  /health
"""
