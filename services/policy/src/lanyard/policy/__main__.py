"""`python -m lanyard.policy`: run the policy service."""

from lanyard.policy.app import create_app
from lanyard.policy.settings import PolicySettings
from lanyard.runtime.service import serve

if __name__ == "__main__":
    settings = PolicySettings()
    serve(create_app(settings), settings)
