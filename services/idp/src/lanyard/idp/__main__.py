"""`python -m lanyard.idp`: run the idp service."""

from lanyard.idp.app import create_app
from lanyard.idp.settings import IdpSettings
from lanyard.runtime.service import serve

if __name__ == "__main__":
    settings = IdpSettings()
    serve(create_app(settings), settings)
