"""The notifications app's part of an account's erasure (accounts/erasure.py runs it)."""

from accounts.batches import delete_in_batches
from accounts.erasure import forget_admin_history
from accounts.models import Account, AccountErasure
from notifications.models import Channel, DeliveryAttempt, Notification

_IN_FLIGHT = (Notification.Status.PENDING, Notification.Status.SENDING)


def count_pending_gdpr_requested(account: Account) -> int:
    """settings.ACCOUNT_ERASURE_PENDING_CHECKS entry: the account's `gdpr_requested`
    notifications not yet delivered, failed or cancelled. Erasure waits for them, since it
    deletes the channels and the outbox they are sent from."""
    return Notification.objects.filter(
        channel__account=account,
        type=Notification.Type.GDPR_REQUESTED,
        status__in=_IN_FLIGHT,
    ).count()


def erase_account_channels(*, account: Account, erasure: AccountErasure) -> None:
    """settings.ACCOUNT_ERASURE_STEPS entry: the account's channels, their notifications and
    attempt logs (callback URLs and responses can carry user data), children first, in
    batches."""
    channels = Channel.objects.filter(account=account)
    notifications = Notification.objects.filter(channel__account=account)
    delete_in_batches(DeliveryAttempt.objects.filter(notification__channel__account=account))
    forget_admin_history(notifications)
    delete_in_batches(notifications)
    forget_admin_history(channels)
    delete_in_batches(channels)
