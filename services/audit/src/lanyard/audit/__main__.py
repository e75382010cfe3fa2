"""`python -m lanyard.audit`: run the audit service."""

from lanyard.audit.app import create_app
from lanyard.audit.settings import AuditSettings
from lanyard.runtime.service import serve

if __name__ == "__main__":
    settings = AuditSettings()
    serve(create_app(settings), settings)
