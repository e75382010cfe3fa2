"""Lanyard from the outside: start the whole stack, configure an enterprise through the admin
APIs, and play the Locker app and its SSO extension on a simulated shared iPhone."""
