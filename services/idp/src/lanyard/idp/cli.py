"""Operator commands: `python -m lanyard.idp bootstrap ...`, `keys rotate ...`,
`services-principal create|revoke|list` (the vendor's services principals) and `mdm-profile`.

They talk to the IdP's Redis directly (private keys live only there) and publish through Kafka
like the service does; none needs the service to be running.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from lanyard.idp.adapters.outbox import OutboxPublisher
from lanyard.idp.adapters.redis_directory import RedisDirectory, RedisEnterprises
from lanyard.idp.adapters.redis_keys import RedisKeys
from lanyard.idp.adapters.redis_services import RedisServicesPrincipals
from lanyard.idp.directory import mdm, services_realm
from lanyard.idp.directory.authn import Passwords
from lanyard.idp.directory.domain import Invalid, NotFound
from lanyard.idp.directory.ports import Conflict
from lanyard.idp.directory.service import bootstrap, rotate_keys
from lanyard.idp.settings import IdpSettings
from lanyard.runtime.kafka import EventPublisher, create_broker
from lanyard.runtime.redis import create_redis
from lanyard.runtime.tokens import issuer_for

PASSWORD_ENV = "LANYARD_BOOTSTRAP_PASSWORD"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lanyard.idp", description="Lanyard IdP")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (the default)")
    b = sub.add_parser("bootstrap", help="create an enterprise, its keys and its superadmin")
    b.add_argument("--enterprise-id", required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--superadmin", required=True, help="the superadmin's username")
    k = sub.add_parser("keys", help="signing keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    r = ksub.add_parser("rotate", help="next → active, active → retired, new next")
    r.add_argument("--enterprise-id", required=True)
    services_realm.add_commands(sub)
    return p


async def _bootstrap(settings: IdpSettings, args: argparse.Namespace, password: str) -> int:
    redis = create_redis(settings.redis_url)
    broker = create_broker(settings.kafka_bootstrap_servers, client_id="lanyard-idp-cli")
    await broker.start()
    try:
        user = await bootstrap(
            RedisEnterprises(redis),
            RedisKeys(redis, settings.max_token_lifetime_s),
            RedisDirectory(redis),
            Passwords(),
            OutboxPublisher(redis, EventPublisher(broker)),
            args.enterprise_id,
            args.name,
            args.superadmin,
            password,
        )
    except Conflict:
        print(f"enterprise {args.enterprise_id} exists already; nothing was changed", file=sys.stderr)
        return 1
    except Invalid as bad:
        print(bad.description, file=sys.stderr)
        return 2
    finally:
        await broker.stop()
        await redis.aclose()
    print(
        f"created enterprise {args.enterprise_id} (issuer {issuer_for(settings.public_base_url, args.enterprise_id)})"
    )
    print(f"superadmin {args.superadmin}: user id {user.user_id}")
    return 0


async def _rotate(settings: IdpSettings, enterprise_id: str) -> int:
    redis = create_redis(settings.redis_url)
    try:
        ring = await rotate_keys(RedisKeys(redis, settings.max_token_lifetime_s), enterprise_id)
    except NotFound:
        print(f"enterprise {enterprise_id} has no keys", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
    for e in ring.entries:
        print(f"{e.alg} {e.status:8} {e.kid}")
    return 0


async def _services(settings: IdpSettings, args: argparse.Namespace) -> int:
    redis = create_redis(settings.redis_url)
    broker = create_broker(settings.kafka_bootstrap_servers, client_id="lanyard-idp-cli")
    await broker.start()
    try:
        realm = services_realm.ServicesRealm(
            RedisServicesPrincipals(redis),
            RedisKeys(redis, settings.max_token_lifetime_s),
            OutboxPublisher(redis, EventPublisher(broker)),
            settings.public_base_url,
        )
        return await services_realm.run_command(args, realm)
    finally:
        await broker.stop()
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    """Run a command; returns the exit status. With no command, serves the IdP."""
    args = parser().parse_args(argv)
    settings = IdpSettings()
    if args.command == "bootstrap":
        password = os.environ.get(PASSWORD_ENV) or getpass.getpass("superadmin password: ")
        return asyncio.run(_bootstrap(settings, args, password))
    if args.command == "keys":
        return asyncio.run(_rotate(settings, args.enterprise_id))
    if args.command == "services-principal":
        return asyncio.run(_services(settings, args))
    if args.command == "mdm-profile":
        origin = mdm.origin_of(settings.public_base_url)
        profile = mdm.sso_extension_profile(
            origin, settings.sso_extension_identifier, settings.sso_extension_team_identifier
        )
        sys.stdout.write(profile.decode())
        return 0
    from lanyard.idp.app import create_app
    from lanyard.runtime.service import serve_instances

    serve_instances(create_app, settings, settings.instances)
    return 0
