"""`rover-demo` (or `python -m lanyard.rover_demo`): run the demo relying party.

Configuration from the environment, or from the demo file `make run` writes:

    ROVER_DEMO_ISSUER, ROVER_DEMO_CLIENT_ID, ROVER_DEMO_CLIENT_SECRET
    ROVER_DEMO_PORT (8490), ROVER_DEMO_BASE_URL (http://127.0.0.1:<port>)
    --demo-file .var/demo.json   takes the issuer and the `rover-demo` app's credentials from it
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import uvicorn

from lanyard.rover_demo.app import Config, create_app


def config(argv: list[str]) -> tuple[Config, int]:
    """The app's configuration and port."""
    parser = argparse.ArgumentParser(prog="rover-demo", description="the demo relying party")
    parser.add_argument("--demo-file", type=Path, help="read issuer and credentials from this demo file")
    parser.add_argument("--port", type=int, default=int(os.environ.get("ROVER_DEMO_PORT", "8490")))
    args = parser.parse_args(argv)
    issuer = os.environ.get("ROVER_DEMO_ISSUER")
    client_id = os.environ.get("ROVER_DEMO_CLIENT_ID")
    secret = os.environ.get("ROVER_DEMO_CLIENT_SECRET")
    if args.demo_file:
        demo = json.loads(args.demo_file.read_text())
        app = demo["apps"]["rover-demo"]
        issuer, client_id, secret = demo["issuer"], app["client_id"], app["client_secret"]
    if not (issuer and client_id and secret):
        parser.error("set ROVER_DEMO_ISSUER, ROVER_DEMO_CLIENT_ID and ROVER_DEMO_CLIENT_SECRET, or pass --demo-file")
    base = os.environ.get("ROVER_DEMO_BASE_URL") or f"http://127.0.0.1:{args.port}"
    return Config(issuer.rstrip("/"), client_id, secret, base.rstrip("/")), args.port


def main(argv: list[str] | None = None) -> None:
    """Serve on 127.0.0.1."""
    cfg, port = config(sys.argv[1:] if argv is None else argv)
    print(f"rover-demo: {cfg.base_url}/ as {cfg.client_id} of {cfg.issuer}", flush=True)
    uvicorn.run(create_app(cfg), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
