"""The topic registry matches DESIGN §3."""

from lanyard.contracts.topics import ALL_TOPICS, BY_NAME, TOPICS


def test_design_topics_with_their_cleanup_policies():
    assert {t.name: t.cleanup for t in TOPICS} == {
        "lanyard.directory.v1": "compact",
        "lanyard.app-profiles.v1": "compact",
        "lanyard.policy-config.v1": "compact",
        "lanyard.device-sessions.v1": "delete",
        "lanyard.entitlements.v1": "delete",
        "lanyard.oidc-events.v1": "delete",
    }


def test_session_topics_keep_seven_days():
    for name in ("lanyard.device-sessions.v1", "lanyard.entitlements.v1", "lanyard.oidc-events.v1"):
        assert BY_NAME[name].config()["retention.ms"] == str(7 * 24 * 3600 * 1000)


def test_every_topic_has_a_dead_letter_topic():
    assert {t.name + ".dlq" for t in TOPICS} <= {t.name for t in ALL_TOPICS}
    assert BY_NAME["lanyard.entitlements.v1.dlq"].cleanup == "delete"
