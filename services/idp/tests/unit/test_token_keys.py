"""TokenKeys remembers verified signatures, never the checks that depend on time or use."""

import time

import pytest

from lanyard.idp.adapters.memory import MemoryKeys
from lanyard.idp.oidc.jwt import ACCESS_TOKEN_TYP, ID_TOKEN_TYP, TokenKeys
from lanyard.runtime.tokens import InvalidToken

ISS = "https://idp.example/e/e1"


@pytest.fixture
async def keys():
    store = MemoryKeys(max_token_lifetime_s=3600)
    await store.create("e1")
    return TokenKeys(store, cache_s=5.0)


def claims(**kw):
    now = int(time.time())
    return {"iss": ISS, "sub": "u1", "aud": "rs", "iat": now, "exp": now + 300, **kw}


async def test_a_remembered_token_is_still_checked_for_issuer_audience_and_expiry(keys):
    tk = keys
    token = await tk.sign("e1", claims(), alg="ES256", typ=ACCESS_TOKEN_TYP)
    assert (await tk.verify("e1", token, issuer=ISS, typs=(ACCESS_TOKEN_TYP,), audience="rs"))["sub"] == "u1"
    with pytest.raises(InvalidToken, match="issuer"):
        await tk.verify("e1", token, issuer="https://other/e/e1", typs=(ACCESS_TOKEN_TYP,))
    with pytest.raises(InvalidToken, match="audience"):
        await tk.verify("e1", token, issuer=ISS, typs=(ACCESS_TOKEN_TYP,), audience="another")
    expired = await tk.sign("e1", claims(exp=int(time.time()) - 1), alg="ES256", typ=ACCESS_TOKEN_TYP)
    with pytest.raises(InvalidToken, match="expired"):
        await tk.verify("e1", expired, issuer=ISS, typs=(ACCESS_TOKEN_TYP,), leeway_s=0)


async def test_a_token_verified_as_one_type_is_not_accepted_as_another(keys):
    tk = keys
    id_token = await tk.sign("e1", claims(), alg="RS256", typ=ID_TOKEN_TYP)
    await tk.verify("e1", id_token, issuer=ISS, typs=(ID_TOKEN_TYP,))
    with pytest.raises(InvalidToken):
        await tk.verify("e1", id_token, issuer=ISS, typs=(ACCESS_TOKEN_TYP,))


async def test_cached_claims_cannot_be_altered_by_a_caller_and_a_tampered_token_is_refused(keys):
    tk = keys
    token = await tk.sign("e1", claims(), alg="ES256", typ=ACCESS_TOKEN_TYP)
    first = await tk.verify("e1", token, issuer=ISS, typs=(ACCESS_TOKEN_TYP,))
    first["sub"] = "mallory"
    assert (await tk.verify("e1", token, issuer=ISS, typs=(ACCESS_TOKEN_TYP,)))["sub"] == "u1"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidToken):
        await tk.verify("e1", tampered, issuer=ISS, typs=(ACCESS_TOKEN_TYP,))
