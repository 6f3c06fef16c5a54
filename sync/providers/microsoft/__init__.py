"""Microsoft 365 and Outlook.com (Microsoft Graph v1.0): calendarView delta, subscriptions,
writes with transactionId and change keys."""

from sync.providers.microsoft.adapter import MicrosoftProvider

__all__ = ["MicrosoftProvider"]
