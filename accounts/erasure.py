"""Erasing an account end to end, for a GDPR request (docs/operations.md, "Erasing an account").

1. `request_erasure` records an AccountErasure row and, in the same transaction, runs
   settings.ACCOUNT_ERASURE_REQUESTED_HOOKS: the notifications app queues `gdpr_requested` to
   the account's open channels, so the integrators hear of it before anything is gone.
2. `erase_account` waits until those notifications are terminal (delivered, failed or
   cancelled: settings.ACCOUNT_ERASURE_PENDING_CHECKS count the others), or until
   ACCOUNT_ERASURE_MAX_WAIT_HOURS have passed. Then it stops the account's syncing and runs
   settings.ACCOUNT_ERASURE_STEPS, the apps to the right erasing their own rows (sync revokes
   provider grants, notifications deletes channels and their outbox, calendars deletes the
   cache), and last the accounts app's own rows: OAuth tokens and grants we issued, social-auth
   links, sessions, admin history, profiles, the Django user and with it the Account.

Every step deletes in batches and is idempotent, and the row says which step ran last, so an
erasure killed midway is finished by running it again (`resume_erasures`, scheduled). The
Django user is deleted rather than anonymized: end-users have no password and nothing of ours
needs their row once the account is gone.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from oauth2_provider.models import AccessToken, DeviceGrant, Grant, IDToken, RefreshToken
from social_django.models import Code, UserSocialAuth

from accounts.batches import delete_in_batches
from accounts.models import Account, AccountErasure, IssuedCode, Profile
from accounts.pending import SESSION_KEY as PENDING_AUTHORIZATION_KEY

log = logging.getLogger(__name__)

ERASURE_REASON = "account erasure"
# Longer than any one erasure should take (provider calls have 15 s timeouts); a run killed
# midway holds the erasure this long, then anyone may resume it.
CLAIM_SECONDS = 15 * 60
ACCOUNTS_STEP = "accounts"
SESSION_BATCH = 500


class ErasureRefused(Exception):
    """The reference names no account, several accounts, or an account we must not erase."""


def find_account(reference: str) -> Account:
    """The account an `acc_…` id or an e-mail address names (exactly one)."""
    reference = reference.strip()
    if reference.startswith("acc_"):
        matches = list(Account.objects.filter(public_id=reference))
    else:
        matches = list(Account.objects.filter(email__iexact=reference))
    if not matches:
        raise ErasureRefused("no account matches; give its acc_ id or its e-mail address")
    if len(matches) > 1:
        ids = ", ".join(account.public_id for account in matches)
        raise ErasureRefused(f"several accounts match ({ids}); give one acc_ id")
    return matches[0]


def request_erasure(*, account: Account) -> AccountErasure:
    """Record the erasure and queue `gdpr_requested` with it (once: asking again returns the
    same row). Refuses staff users: support staff are not end-users."""
    user = account.user
    if user.is_staff or user.is_superuser:
        raise ErasureRefused("the account belongs to a staff user; remove staff status first")
    with transaction.atomic():
        erasure, created = AccountErasure.objects.get_or_create(
            account_public_id=account.public_id,
            defaults={"account_pk": account.pk, "user_pk": account.user_id},
        )
        if created:
            for dotted in settings.ACCOUNT_ERASURE_REQUESTED_HOOKS:
                import_string(dotted)(account)
    if created:
        log.info("erasure of %s requested", account.public_id)
    return erasure


def erase_by_reference(*, reference: str, wait: bool = True) -> AccountErasure:
    """Request (or resume) and run the erasure of the account an `acc_…` id or e-mail address
    names: what the `erase_account` command does. An erasure already recorded is resumed by
    its `acc_…` id, even once the account row is gone."""
    existing = AccountErasure.objects.filter(account_public_id=reference.strip()).first()
    erasure = existing or request_erasure(account=find_account(reference))
    return erase_account(erasure=erasure, wait=wait)


class ErasureBusy(Exception):
    """Another run holds the erasure (or held it and was killed: its claim lapses)."""


def erase_account(*, erasure: AccountErasure, wait: bool = True) -> AccountErasure:
    """Run or resume one erasure. With `wait`, an erasure whose `gdpr_requested`
    notifications are still in flight is left as it is (the scheduled sweep comes back to it).
    Returns the row: DONE, or still NOTIFYING. Raises ErasureBusy while another run holds it."""
    if erasure.is_done:
        return erasure
    if not _claim(erasure):
        raise ErasureBusy(f"{erasure.account_public_id} is being erased by another run")
    try:
        erasure.refresh_from_db()  # another run may have moved it on before our claim
        return erasure if erasure.is_done else _erase(erasure, wait)
    finally:
        AccountErasure.objects.filter(pk=erasure.pk).update(claimed_until=None)


def _claim(erasure: AccountErasure) -> bool:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    until = now + timedelta(seconds=CLAIM_SECONDS)
    return bool(AccountErasure.objects.filter(free, pk=erasure.pk).update(claimed_until=until))


def _erase(erasure: AccountErasure, wait: bool) -> AccountErasure:
    account = Account.objects.filter(pk=erasure.account_pk).first()
    if erasure.state == AccountErasure.State.NOTIFYING:
        if account is not None and wait and _must_wait(erasure, account):
            return erasure
        _start_erasing(erasure)
    if account is not None:
        for dotted in settings.ACCOUNT_ERASURE_STEPS:
            _run_step(erasure, dotted, import_string(dotted), account)
        _run_step(erasure, ACCOUNTS_STEP, erase_account_rows, account)
    _save(erasure, state=AccountErasure.State.DONE, step="", completed_at=timezone.now())
    log.info("erasure of %s done", erasure.account_public_id)
    return erasure


def resume_erasures() -> int:
    """Scheduled: finish every erasure that is not done (waiting ones once their notifications
    are terminal). One failing erasure does not stop the others. Returns how many finished."""
    finished = 0
    for erasure in AccountErasure.objects.exclude(state=AccountErasure.State.DONE):
        try:
            finished += erase_account(erasure=erasure).is_done
        except ErasureBusy:
            continue
        except Exception:
            log.exception("erasure of %s failed; the next sweep retries", erasure.account_public_id)
    return finished


def _must_wait(erasure: AccountErasure, account: Account) -> bool:
    deadline = erasure.requested_at + timedelta(hours=settings.ACCOUNT_ERASURE_MAX_WAIT_HOURS)
    if timezone.now() >= deadline:
        return False
    pending = sum(import_string(d)(account) for d in settings.ACCOUNT_ERASURE_PENDING_CHECKS)
    return pending > 0


def _start_erasing(erasure: AccountErasure) -> None:
    """Stop syncing first (the poller skips disconnected profiles), so that the steps do not
    race a sync filling the cache again. No disconnect hooks: the integrators were told
    `gdpr_requested`, and a `profile_disconnected` now would only be deleted unsent."""
    Profile.objects.filter(account_id=erasure.account_pk).update(
        status=Profile.Status.DISCONNECTED,
        disconnected_reason=ERASURE_REASON,
        disconnected_at=timezone.now(),
    )
    _save(erasure, state=AccountErasure.State.ERASING, erasing_started_at=timezone.now())


def _run_step(erasure: AccountErasure, name: str, step, account: Account) -> None:
    _save(erasure, step=name, last_error="")
    try:
        step(account=account, erasure=erasure)
    except Exception as exc:
        # The class only: a message could quote user data, and this row outlives the account.
        _save(erasure, last_error=f"{name}: {type(exc).__name__}")
        raise


def _save(erasure: AccountErasure, **fields) -> None:
    for name, value in fields.items():
        setattr(erasure, name, value)
    erasure.save(update_fields=list(fields))


def erase_account_rows(*, account: Account, erasure: AccountErasure) -> None:
    """The accounts app's own rows, last (the other steps still read the profiles)."""
    user_pk = account.user_id
    delete_in_batches(RefreshToken.objects.filter(user_id=user_pk))
    delete_in_batches(AccessToken.objects.filter(user_id=user_pk))
    delete_in_batches(IDToken.objects.filter(user_id=user_pk))
    delete_in_batches(Grant.objects.filter(user_id=user_pk))
    delete_in_batches(DeviceGrant.objects.filter(user_id=user_pk))
    delete_in_batches(IssuedCode.objects.filter(account=account))
    delete_in_batches(UserSocialAuth.objects.filter(user_id=user_pk))
    emails = account.email_addresses()
    if emails:
        email_match = Q()
        for email in emails:
            email_match |= Q(email__iexact=email)
        delete_in_batches(Code.objects.filter(email_match))
    profiles = Profile.objects.filter(account=account)
    forget_sessions(user_pk=user_pk, profile_ids=set(profiles.values_list("public_id", flat=True)))
    forget_admin_history(profiles)
    forget_admin_history(Account.objects.filter(pk=account.pk))
    forget_admin_history(get_user_model().objects.filter(pk=user_pk))
    delete_in_batches(profiles)
    # The Account goes with its user (CASCADE).
    get_user_model().objects.filter(pk=user_pk).delete()


def forget_sessions(*, user_pk: int, profile_ids: set[str]) -> int:
    """Delete the sessions signed in as the user, and the connect pages' sessions that carry one
    of its profiles. Sessions are opaque blobs, so each is decoded (in key order, in batches).
    Returns the number deleted."""
    deleted, last_key = 0, ""
    sessions = Session.objects.order_by("session_key")
    while batch := list(sessions.filter(session_key__gt=last_key)[:SESSION_BATCH]):
        last_key = batch[-1].session_key
        doomed = [s.session_key for s in batch if _session_belongs(s, user_pk, profile_ids)]
        if doomed:
            deleted += Session.objects.filter(session_key__in=doomed).delete()[0]
    return deleted


def _session_belongs(session: Session, user_pk: int, profile_ids: set[str]) -> bool:
    data = session.get_decoded()  # an undecodable session decodes to {}
    if str(data.get("_auth_user_id", "")) == str(user_pk):
        return True
    pending = data.get(PENDING_AUTHORIZATION_KEY)
    return isinstance(pending, dict) and pending.get("profile_id") in profile_ids


def forget_admin_history(queryset) -> int:
    """Delete the admin's history entries about the rows `queryset` selects: their
    `object_repr` and change messages can quote user data (an account's e-mail, a profile's
    name). Staff edits are few, so the entries of the model are read and matched."""
    content_type = ContentType.objects.get_for_model(queryset.model)
    entries = LogEntry.objects.filter(content_type=content_type)
    referenced = {value for value in entries.values_list("object_id", flat=True) if value}
    numeric = [int(value) for value in referenced if value.isdigit()]
    if not numeric:
        return 0
    mine = [str(pk) for pk in queryset.filter(pk__in=numeric).values_list("pk", flat=True)]
    return entries.filter(object_id__in=mine).delete()[0]
