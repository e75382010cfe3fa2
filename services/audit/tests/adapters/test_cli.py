"""`python -m lanyard.audit verify|prune`: the operator's view of the chain."""

import json
import sqlite3
import subprocess
import sys

from lanyard.audit.adapters.sqlite_store import SqliteLog
from lanyard.audit.cli import main
from lanyard.audit.domain import Position, entry_from_json
from lanyard.harness.synthetic import generate_day


def fill(path, n=60):
    log = SqliteLog(path)
    for i, e in enumerate(generate_day("e1", devices=1, users=2, shifts=1).events[:n]):
        log.append(entry_from_json(json.loads(e.to_json()), Position(e.topic.name, 0, i)))
    log.close()


def test_verify_prints_ok_with_the_count(tmp_path, capsys):
    fill(tmp_path / "a.sqlite")
    assert main(["verify", "--db", str(tmp_path / "a.sqlite")]) == 0
    assert capsys.readouterr().out.startswith("OK 60 records verified")


def test_verify_names_the_first_broken_record_and_exits_1(tmp_path):
    db = tmp_path / "a.sqlite"
    fill(db)
    with sqlite3.connect(db) as raw:
        event_id = raw.execute("SELECT event_id FROM records WHERE seq = 33").fetchone()[0]
        raw.execute("UPDATE records SET hash = replace(hash, substr(hash, 1, 1), 'x') WHERE seq = 33")
    done = subprocess.run(
        [sys.executable, "-m", "lanyard.audit", "verify", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"seq 33 event_id {event_id}" in done.stdout


def keypair(capsys) -> dict[str, str]:
    assert main(["keygen"]) == 0
    return dict(line.split("=", 1) for line in capsys.readouterr().out.split())


def test_prune_needs_the_private_key_and_verify_only_the_public_one(tmp_path, monkeypatch, capsys):
    db = tmp_path / "a.sqlite"
    fill(db)
    signer, other = keypair(capsys), keypair(capsys)
    assert main(["prune", "--before", "2026-11-30T05:02:00Z", "--db", str(db)]) == 1
    assert "REFUSED" in capsys.readouterr().out
    monkeypatch.setenv("LANYARD_AUDIT_CHECKPOINT_KEY", signer["LANYARD_AUDIT_CHECKPOINT_KEY"])
    assert main(["prune", "--before", "2026-11-30T05:02:00Z", "--db", str(db)]) == 0
    assert "OK pruned" in capsys.readouterr().out

    # An auditor holds only the public key, and it is enough.
    monkeypatch.delenv("LANYARD_AUDIT_CHECKPOINT_KEY")
    assert main(["verify", "--db", str(db)]) == 1
    assert "no checkpoint public key" in capsys.readouterr().out
    monkeypatch.setenv("LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY", signer["LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY"])
    assert main(["verify", "--db", str(db)]) == 0
    monkeypatch.setenv("LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY", other["LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY"])
    assert main(["verify", "--db", str(db)]) == 1
    assert "checkpoint signature invalid" in capsys.readouterr().out
    monkeypatch.setenv("LANYARD_AUDIT_CHECKPOINT_PUBLIC_KEY", "not-a-key")
    assert main(["verify", "--db", str(db)]) == 2
    assert "32 bytes" in capsys.readouterr().err


def test_bad_input_is_refused_without_a_traceback(tmp_path, capsys):
    assert main(["verify", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert not (tmp_path / "missing.sqlite").exists()
    fill(tmp_path / "a.sqlite", 5)
    assert main(["prune", "--before", "yesterday", "--db", str(tmp_path / "a.sqlite")]) == 2
