"""Lanyard session service. MAM: devices, checkouts, the device-session state machine and its timers."""
