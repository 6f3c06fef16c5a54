from django.conf import settings
from django.db import connection, models
from django.db.models import Exists, OuterRef, Q
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.fields import EncryptedJSONField, EncryptedTextField
from accounts.ids import new_account_id, new_profile_id
from accounts.scopes import stored_scope_regex


class AccountQuerySet(models.QuerySet):
    def for_user(self, user) -> "AccountQuerySet":
        return self.filter(user=user)

    def authorized_for(self, application, *, now, scope: str) -> "AccountQuerySet":
        """Accounts whose end-user has granted `application` `scope` (or a scope that implies
        it) and not revoked it: a live refresh token, or an access token that has not
        expired. A refresh token carries the scope of the access token it was issued with."""
        granted = stored_scope_regex(scope)
        refresh = RefreshToken.objects.filter(
            user=OuterRef("user"),
            application=application,
            revoked__isnull=True,
            access_token__scope__regex=granted,
        )
        access = AccessToken.objects.filter(
            user=OuterRef("user"), application=application, expires__gt=now, scope__regex=granted
        )
        return self.filter(Exists(refresh) | Exists(access))


class Account(models.Model):
    """An end-user whose calendars we keep in sync (Cronofy's account, `acc_…`)."""

    public_id = models.CharField(max_length=40, unique=True, default=new_account_id, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account"
    )
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    default_tzid = models.CharField(max_length=64, default="Etc/UTC")
    # Allocator of the per-account change-log sequence (calendars.ChangeLogEntry.sequence).
    # Bumped with a conditional UPDATE inside the writing transaction, so the row lock orders
    # concurrent writers and sequence order equals commit order for one account.
    last_change_seq = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        indexes = [
            # Support staff search by e-mail in the admin.
            models.Index(fields=["email"], name="account_email_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} <{self.email}>"

    def email_addresses(self) -> frozenset[str]:
        """The end-user's own addresses, lowercased: the account's and every profile's (one
        query). The one rule for "this attendee is the end-user": read options, answering an
        invitation through the API, the reconciler that applies the answer, and sync."""
        emails = {self.email.strip().lower()} if self.email else set()
        names = Profile.objects.filter(account=self).values_list("profile_name", flat=True)
        emails.update(name.strip().lower() for name in names if "@" in name)
        return frozenset(emails)

    def allocate_change_sequences(self, count: int) -> range:
        """Reserve `count` consecutive change-log sequence numbers; call inside a transaction.

        One statement (UPDATE ... RETURNING; PostgreSQL, and SQLite since 3.35): every event
        write of every path runs it, and a second query to read the new value back cost a
        round trip each time."""
        quote = connection.ops.quote_name  # identifiers quoted; the values are parameters
        t, c, pk = quote(Account._meta.db_table), quote("last_change_seq"), quote("id")
        sql = f"UPDATE {t} SET {c} = {c} + %s WHERE {pk} = %s RETURNING {c}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [count, self.pk])
            (last,) = cursor.fetchone()
        self.last_change_seq = last
        return range(last - count + 1, last + 1)


class ProfileQuerySet(models.QuerySet):
    def for_account(self, account: Account) -> "ProfileQuerySet":
        return self.filter(account=account)

    def connected(self) -> "ProfileQuerySet":
        return self.filter(status=Profile.Status.CONNECTED)


class Profile(models.Model):
    """One connected provider account of an end-user (`pro_…`)."""

    class Provider(models.TextChoices):
        GOOGLE = "google", "Google"
        MICROSOFT = "microsoft", "Microsoft 365 / Outlook"
        CALDAV = "caldav", "CalDAV (iCloud, Fastmail, Nextcloud…)"
        ICS = "ics", "ICS feed"

    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected"

    public_id = models.CharField(max_length=40, unique=True, default=new_profile_id, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="profiles")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    # Finer service name shown to integrators: google, gsuite, office365, outlook_com, icloud…
    provider_service = models.CharField(max_length=32, blank=True)
    # The provider's stable identity of the connected account (Google/Microsoft user id, CalDAV
    # principal URL, ICS feed URL); used to relink instead of duplicating a profile.
    provider_account_id = models.CharField(max_length=512)
    profile_name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CONNECTED)
    disconnected_reason = models.CharField(max_length=255, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    # Provider tokens / CalDAV password / feed URL secrets: encrypted at rest, never displayed.
    credentials = EncryptedJSONField(null=True, blank=True, bind_to="public_id")
    is_initial_sync_required = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProfileQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "provider", "provider_account_id"],
                name="profile_unique_provider_identity",
            )
        ]
        indexes = [
            # Admin filters and the poller skip disconnected profiles.
            models.Index(fields=["provider", "status"], name="profile_provider_status_idx"),
            # The support dashboard: how many are disconnected, and the latest of them.
            models.Index(
                fields=["-disconnected_at"],
                condition=Q(status="disconnected"),
                name="profile_disconnected_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.provider}:{self.profile_name}"

    @property
    def is_connected(self) -> bool:
        return self.status == self.Status.CONNECTED

    @property
    def cronofy_provider_name(self) -> str:
        """Cronofy's `provider_name` for this profile."""
        if self.provider == self.Provider.MICROSOFT:
            return "live_connect" if self.provider_service == "outlook_com" else "office365"
        if self.provider == self.Provider.CALDAV and self.provider_service == "icloud":
            return "apple"
        return self.provider


class ApplicationSecret(models.Model):
    """One client secret of an integrator application (oauth2_provider.Application).

    Several can be active at once so that an integrator can rotate without downtime. Each is
    kept hashed (to authenticate) and encrypted (Cronofy signs push notifications with it).
    """

    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="client_secrets",
    )
    secret_hash = models.CharField(max_length=255)
    # SHA-256 hex of the secret: an exact, indexable lookup for API-key authentication.
    secret_checksum = models.CharField(max_length=64, unique=True)
    secret = EncryptedTextField(bind_to="secret_checksum")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Signing and authentication read the active secrets of one application.
            models.Index(fields=["application", "is_active"], name="appsecret_app_active_idx"),
        ]

    def __str__(self) -> str:
        state = "active" if self.is_active else "retired"
        return f"secret #{self.pk} of {self.application_id} ({state})"


class IssuedCode(models.Model):
    """One authorization code we issued to an integrator, remembered past its redemption.

    django-oauth-toolkit deletes its Grant row when a code is redeemed, so a replayed code would
    just be "unknown". This row (keyed by the code's SHA-256, never the code) lets the token
    endpoint recognise a replay and revoke the tokens issued from the code (RFC 6749 §4.1.2),
    and carries the profile the end-user connected for the token response's linking_profile.
    """

    code_checksum = models.CharField(max_length=64, unique=True)
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    linking_profile = models.ForeignKey(
        Profile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    issued_at = models.DateTimeField(auto_now_add=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    # The refresh-token family minted from this code: revoked as a whole on replay.
    token_family = models.UUIDField(null=True, blank=True)

    class Meta:
        indexes = [
            # Purging old records (issued before a cut-off).
            models.Index(fields=["issued_at"], name="issuedcode_issued_at_idx"),
        ]

    def __str__(self) -> str:
        return f"code #{self.pk} for {self.application_id}"


class AccountErasure(models.Model):
    """One account's erasure (a GDPR request), from the `gdpr_requested` notice to the last
    deleted row. It outlives the account on purpose: it is how a killed erasure is resumed and
    how support shows that it happened. It keeps no user data, only our own ids (the account's
    `acc_…`, the primary keys it had) and what happened to each provider grant."""

    class State(models.TextChoices):
        # gdpr_requested is queued; erasing waits until those notifications are terminal.
        NOTIFYING = "notifying", "Notifying integrators"
        ERASING = "erasing", "Erasing"
        DONE = "done", "Erased"

    account_public_id = models.CharField(max_length=40, unique=True)
    # Primary keys of the rows being erased: no foreign key, since the rows go away.
    account_pk = models.BigIntegerField()
    user_pk = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.NOTIFYING)
    # Name of the step running or last started (settings.ACCOUNT_ERASURE_STEPS, then "accounts").
    step = models.CharField(max_length=200, blank=True)
    # One entry per profile whose provider grant was handled: {"profile", "provider", "outcome"}.
    revocations = models.JSONField(default=list, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Claimed by the run working on it (a conditional UPDATE), so that the sweep and a command
    # never erase the same account at once; a killed run's claim lapses.
    claimed_until = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    erasing_started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweep resumes the unfinished ones.
            models.Index(fields=["state"], name="erasure_state_idx"),
        ]

    def __str__(self) -> str:
        return f"erasure of {self.account_public_id} ({self.state})"

    @property
    def is_done(self) -> bool:
        return self.state == self.State.DONE


class AuditEntry(models.Model):
    """One thing a staff member did in the support console: who, what, on which object, when.

    Append-only: written by accounts.audit.record_staff_action, never changed or deleted (the
    admin grants no change or delete permission on it, not even to superusers). The object is
    named by its type and public id only, never by a foreign key (the entry outlives it) nor a
    label (labels carry end-users' names and addresses, which an erasure must not leave
    behind here)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    actor_username = models.CharField(max_length=150)  # kept if the staff user is deleted
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)  # app_label.model
    object_id = models.CharField(max_length=64)  # the public id (or pk where there is none)
    detail = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [
            # The audit list, newest first, and "what was done to this object".
            models.Index(fields=["-at"], name="audit_at_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_username} {self.action} {self.object_type} {self.object_id}"
