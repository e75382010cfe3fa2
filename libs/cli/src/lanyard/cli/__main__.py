"""`python -m lanyard.cli` is `lanyard`."""

from lanyard.cli.main import main

main()
