"""Services of the notifications app (the only entry points other apps may call).

- channels: create_channel, close_channel, reopen_channel, retry_notification,
  replay_notification and the
  notify_* functions the sync engine calls (profile_disconnected, initial sync, GDPR).
- relay: relay_changes / relay_account_changes (change log → coalesced `change` rows).
- dispatch: claim_due, record_results, run_dispatcher, dispatch_due.
- delivery: PushDelivery, the steps of the delivery process's loop (`manage.py deliver`).
- heartbeat: record_heartbeat, forget_heartbeat, heartbeat_age (readiness of that process).
- erasure: count_pending_gdpr_requested, erase_account_channels (accounts/erasure.py).
- replay: replay_changes (POST /v1/channels/{id}/replay), sequence_before, ChannelNotOpen.
- retention: purge_delivery_history (attempt logs and finished notifications past retention).
"""

from notifications.services.channels import (
    ChannelError,
    close_channel,
    create_channel,
    kick_dispatcher,
    kick_relay,
    notify_gdpr_requested,
    notify_profile_disconnected,
    notify_profile_initial_sync_completed,
    reopen_channel,
    replay_notification,
    retry_notification,
)
from notifications.services.delivery import PushDelivery
from notifications.services.dispatch import (
    claim_due,
    dispatch_due,
    record_results,
    run_dispatcher,
)
from notifications.services.erasure import (
    count_pending_gdpr_requested,
    erase_account_channels,
)
from notifications.services.heartbeat import (
    HEARTBEAT_SECONDS,
    forget_heartbeat,
    heartbeat_age,
    record_heartbeat,
)
from notifications.services.relay import relay_account_changes, relay_changes
from notifications.services.replay import ChannelNotOpen, replay_changes, sequence_before
from notifications.services.retention import RetentionReport, purge_delivery_history

__all__ = [
    "ChannelError",
    "ChannelNotOpen",
    "PushDelivery",
    "RetentionReport",
    "claim_due",
    "close_channel",
    "count_pending_gdpr_requested",
    "create_channel",
    "dispatch_due",
    "erase_account_channels",
    "HEARTBEAT_SECONDS",
    "forget_heartbeat",
    "heartbeat_age",
    "kick_dispatcher",
    "kick_relay",
    "notify_gdpr_requested",
    "notify_profile_disconnected",
    "notify_profile_initial_sync_completed",
    "purge_delivery_history",
    "record_heartbeat",
    "record_results",
    "relay_account_changes",
    "relay_changes",
    "reopen_channel",
    "replay_notification",
    "replay_changes",
    "retry_notification",
    "run_dispatcher",
    "sequence_before",
]
