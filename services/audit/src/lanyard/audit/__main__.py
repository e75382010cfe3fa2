"""`python -m lanyard.audit [serve|verify|prune]`: run the audit service, or a log tool (see cli)."""

import sys

from lanyard.audit.cli import main

if __name__ == "__main__":
    sys.exit(main())
