"""Command line: `python -m lanyard.audit [serve|verify|prune]` (also installed as `lanyard-audit`).

- `serve` (the default): run the service.
- `verify [--db PATH]`: recompute the chain; prints OK with the count, or names the first broken
  record (seq, event_id) and exits 1.
- `prune --before TIME [--db PATH]`: delete records older than TIME behind a signed checkpoint.
- `keygen`: print a new Ed25519 key pair for checkpoints, as the two settings that take them.

The private key comes from LANYARD_AUDIT_CHECKPOINT_KEY (never from the command line, where it
would land in shell history and process lists) and only `prune` needs it; `verify` needs only
the public key (LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY), so whoever checks the log cannot forge it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import ValidationError

from lanyard.audit.adapters.sqlite_store import SqliteLog
from lanyard.audit.domain import parse_time
from lanyard.audit.service import PruneRefused, prune_log, verify_log
from lanyard.audit.settings import AuditSettings, encode_key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lanyard-audit", description="Lanyard audit service and log tools")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the audit service (default)")
    verify = sub.add_parser("verify", help="recompute the hash chain")
    verify.add_argument("--db", type=Path, help="the audit log file (default: settings)")
    prune = sub.add_parser("prune", help="delete old records behind a signed checkpoint")
    prune.add_argument("--before", required=True, help="ISO 8601 time; records that occurred before it go")
    prune.add_argument("--db", type=Path, help="the audit log file (default: settings)")
    sub.add_parser("keygen", help="print a new Ed25519 checkpoint key pair")
    return parser


def _open(settings: AuditSettings, db: Path | None) -> SqliteLog | None:
    path = db or settings.db_path
    try:
        return SqliteLog(path, settings.sqlite_synchronous, create=False)
    except FileNotFoundError:
        print(f"no audit log at {path}", file=sys.stderr)
        return None


def verify(settings: AuditSettings, db: Path | None) -> int:
    """Verify the chain; 0 when it holds, 1 when broken, 2 when the file is missing."""
    log = _open(settings, db)
    if log is None:
        return 2
    try:
        # One read snapshot: the service may be appending to the live file meanwhile.
        verdict = log.consistent(lambda snapshot: verify_log(snapshot, settings.checkpoint_verifier()))
    finally:
        log.close()
    if verdict.ok:
        span = f" (seq {verdict.first_seq}..{verdict.last_seq})" if verdict.count else ""
        print(f"OK {verdict.count} records verified{span}")
        return 0
    print(f"BROKEN at seq {verdict.broken_seq} event_id {verdict.broken_event_id}: {verdict.reason}")
    return 1


def prune(settings: AuditSettings, db: Path | None, before: str) -> int:
    """Prune; 0 on success, 1 when refused, 2 on bad input or a missing file."""
    try:
        moment = parse_time(before)
    except ValueError:
        print(f"--before is not an ISO 8601 time: {before!r}", file=sys.stderr)
        return 2
    log = _open(settings, db)
    if log is None:
        return 2
    try:
        deleted, checkpoint = prune_log(log, moment, settings.checkpoint_signer(), datetime.now(UTC))
    except PruneRefused as refused:
        print(f"REFUSED: {refused}")
        return 1
    finally:
        log.close()
    where = f"; checkpoint at seq {checkpoint.seq}" if checkpoint else ""
    print(f"OK pruned {deleted} records{where}")
    return 0


def keygen() -> int:
    """Print a fresh key pair as environment settings (the private one is a secret: store it so)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    print(f"LANYARD_AUDIT_CHECKPOINT_KEY={encode_key(seed)}")
    print(f"LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY={encode_key(public)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lanyard-audit` and `python -m lanyard.audit`."""
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        return keygen()
    try:
        settings = AuditSettings()
    except ValidationError as invalid:
        for problem in invalid.errors():
            print(f"bad setting {'.'.join(map(str, problem['loc']))}: {problem['msg']}", file=sys.stderr)
        return 2
    if args.command == "verify":
        return verify(settings, args.db)
    if args.command == "prune":
        return prune(settings, args.db, args.before)
    from lanyard.audit.app import create_app
    from lanyard.runtime.service import serve

    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
