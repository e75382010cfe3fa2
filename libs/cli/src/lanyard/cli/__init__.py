"""`lanyard`, one command-line tool for people and scripts, through the gateway like any client:

- `lanyard locker …` plays the Locker app and its SSO extension on a shared iPhone;
- `lanyard admin …` is a client of the admin APIs (IdP, policy, session, audit);
- `lanyard demo …` seeds the demo enterprise (`make run`) and plays the story (`make demo`);
- `lanyard ops …` operator tools on the broker (dead-letter re-drive).

Every command takes `--json`. Exit codes are in `lanyard.cli.output`.
"""
