"""Lanyard policy service. User policies, deployments, licences, org settings, cloud connection; entitlements."""
