"""Provider sandboxes: protocol-faithful, in-memory stand-ins for calendar providers.

Each sandbox serves a provider's real HTTP protocol on 127.0.0.1 with the Python standard
library only (no Django, nothing from this project's apps, no third-party packages), so that
an adapter, our own tests and integrators' CI can talk to it exactly as to the provider, and
steer it (users, calendars, edits "made by the user", expired tokens, injected faults) from
Python.

- `sync.sandbox.google.GoogleSandbox`: Google OAuth 2.0 and Google Calendar API v3
  (`python -m sync.sandbox.google --port 8765` runs it standalone).
- `sync.sandbox.microsoft.MicrosoftSandbox`: the Microsoft identity platform (OAuth 2.0 v2.0)
  and Microsoft Graph v1.0 calendars, delta and subscriptions
  (`python -m sync.sandbox.microsoft --port 8766`). It shares the Google sandbox's server.
"""

from sync.sandbox.google import GoogleSandbox
from sync.sandbox.microsoft import MicrosoftSandbox

__all__ = ["GoogleSandbox", "MicrosoftSandbox"]
