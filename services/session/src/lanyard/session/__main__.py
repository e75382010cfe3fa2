"""`python -m lanyard.session`: run the session service."""

from lanyard.runtime.service import serve
from lanyard.session.app import create_app
from lanyard.session.settings import SessionSettings

if __name__ == "__main__":
    settings = SessionSettings()
    serve(create_app(settings), settings)
