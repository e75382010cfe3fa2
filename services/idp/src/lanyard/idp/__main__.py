"""`python -m lanyard.idp [serve | bootstrap ... | keys rotate ...]`: run the idp service or an
operator command (see `lanyard.idp.cli`)."""

import sys

from lanyard.idp.cli import main

if __name__ == "__main__":
    sys.exit(main())
