"""`python -m lanyard.policy [serve | readiness --enterprise E]`: run the service, or print readiness."""

import sys

from lanyard.policy.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
