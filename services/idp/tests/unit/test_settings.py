"""The IdP's settings read the environment, token lifetimes included."""

from lanyard.idp.settings import DeviceSettings, IdpSettings, OidcConfig


def test_an_operator_sets_token_lifetimes_in_the_environment(monkeypatch):
    monkeypatch.setenv("LANYARD_IDP_ACCESS_TOKEN_TTL_S", "120")
    monkeypatch.setenv("LANYARD_IDP_REFRESH_TOKEN_TTL_S", "3600")
    monkeypatch.setenv("LANYARD_IDP_ADMIN_TOKEN_TTL_S", "600")
    monkeypatch.setenv("LANYARD_IDP_BCL_TOKEN_TTL_S", "60")
    config = OidcConfig(public_base_url="https://sso.example")  # what create_app passes
    assert (config.access_token_ttl_s, config.refresh_token_ttl_s) == (120, 3600)
    assert config.public_base_url == "https://sso.example"
    assert IdpSettings().admin_token_ttl_s == 600
    assert DeviceSettings().bcl_token_ttl_s == 60


def test_the_defaults_are_the_production_values(monkeypatch):
    for name in ("ACCESS_TOKEN_TTL_S", "ID_TOKEN_TTL_S", "CODE_TTL_S", "RESOURCE_AUDIENCE"):
        monkeypatch.delenv(f"LANYARD_IDP_{name}", raising=False)
    config = OidcConfig()
    assert (config.access_token_ttl_s, config.id_token_ttl_s, config.code_ttl_s) == (300, 300, 60)
    assert config.audience("https://sso.example/e/acme") == "https://sso.example/e/acme/userinfo"
