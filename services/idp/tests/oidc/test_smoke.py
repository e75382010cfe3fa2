import pytest

pytestmark = pytest.mark.integration


async def test_happy(world):
    await world.login()
    tokens = await world.tokens()
    assert tokens["token_type"] == "Bearer"
    r = await world.http.get(world.url("/userinfo"), headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert r.status_code == 200, r.text
    print(r.json())
    r = await world.refresh(tokens["refresh_token"])
    assert r.status_code == 200, r.text
    r = await world.introspect(r.json()["access_token"])
    assert r.json()["active"], r.text
