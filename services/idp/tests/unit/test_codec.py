"""The Redis codec of app profiles: what is stored decodes to the same profile, and a profile
stored by an older release (before a field existed) still decodes, to that field's default."""

from __future__ import annotations

import json
from typing import Any

from lanyard.idp.adapters.codec import dump_profile, load_profile
from lanyard.idp.directory.domain import AppProfile, Client


def _profile(**client: Any) -> AppProfile:
    return AppProfile(
        Client("acme", "c1", "RP", "RP", "confidential", ("https://rp.example.test/cb",), **client),
        template=None,
        has_secret=True,
    )


def test_a_profile_round_trips_with_its_id_token_alg():
    profile = _profile(id_token_signed_response_alg="ES256")
    assert load_profile(dump_profile(profile)) == profile


def test_a_client_stored_before_the_id_token_alg_existed_decodes_to_the_default():
    stored = json.loads(dump_profile(_profile(backchannel_logout_uri="https://rp.example.test/bcl")))
    del stored["client"]["id_token_signed_response_alg"]
    loaded = load_profile(json.dumps(stored))
    assert loaded.client.id_token_signed_response_alg is None
    assert loaded.client.backchannel_logout_uri == "https://rp.example.test/bcl"
