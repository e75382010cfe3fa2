"""`python -m lanyard.console`: run the admin console."""

from lanyard.console.app import create_app
from lanyard.console.settings import ConsoleSettings
from lanyard.runtime.service import serve

if __name__ == "__main__":
    settings = ConsoleSettings()
    serve(create_app(settings), settings)
