from django import forms
from django.contrib import admin, messages
from oauth2_provider.models import get_application_model

from accounts.admin_base import ReadOnlyAdmin
from accounts.audit import record_staff_action
from accounts.erasure import ErasureBusy, ErasureRefused, erase_account, request_erasure
from accounts.models import Account, AccountErasure, ApplicationSecret, AuditEntry, Profile
from accounts.oauth_services import add_client_secret, create_application, retire_client_secret


class ProfileInline(admin.TabularInline):
    model = Profile
    fields = ("public_id", "provider", "profile_name", "status", "disconnected_reason")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("public_id", "email", "name", "default_tzid", "created_at")
    search_fields = ("public_id", "email", "name", "user__username")
    readonly_fields = ("public_id", "last_change_seq", "created_at", "updated_at")
    raw_id_fields = ("user",)
    list_select_related = ("user",)
    show_full_result_count = False
    inlines = [ProfileInline]
    actions = ["erase_accounts"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # accounts go through the erasure (it stops provider grants first)

    @admin.action(description="Erase selected accounts (GDPR; cannot be undone)")
    def erase_accounts(self, request, queryset):
        for account in queryset.select_related("user"):
            public_id = account.public_id
            record_staff_action(user=request.user, action="erase", target=account)
            try:
                erasure = erase_account(erasure=request_erasure(account=account))
            except (ErasureRefused, ErasureBusy) as exc:
                self.message_user(request, f"{public_id}: {exc}", messages.ERROR)
                continue
            if erasure.is_done:
                self.message_user(request, f"{public_id}: erased", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"{public_id}: gdpr_requested sent; the erasure finishes once it is "
                    "delivered (see Account erasures)",
                    messages.WARNING,
                )


@admin.register(AccountErasure)
class AccountErasureAdmin(ReadOnlyAdmin):
    """Read-only: erasures are started by the account action or `erase_account`, and the row
    is the record that one happened."""

    list_display = ("account_public_id", "state", "step", "requested_at", "completed_at")
    list_filter = ("state",)
    search_fields = ("account_public_id",)
    readonly_fields = [field.name for field in AccountErasure._meta.fields]


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    # A profile is the state of a provider grant: editing its status or identity by hand
    # would desynchronize it from the provider, and deleting it would orphan the grant. The
    # actions (console/admin.py) change it through the services instead.
    list_display = (
        "public_id",
        "account_email",
        "provider",
        "profile_name",
        "status",
        "is_initial_sync_required",
        "disconnected_at",
    )
    list_filter = ("provider", "status", "is_initial_sync_required")
    search_fields = ("public_id", "profile_name", "account__email", "account__public_id")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    # Credentials are never displayed, not even to superusers.
    exclude = ("credentials",)
    readonly_fields = ("public_id", "created_at", "updated_at", "has_credentials")
    show_full_result_count = False

    @admin.display(description="account", ordering="account__email")
    def account_email(self, obj: Profile) -> str:
        return obj.account.email

    @admin.display(boolean=True, description="credentials stored")
    def has_credentials(self, obj: Profile) -> bool:
        return bool(obj.credentials)


@admin.register(ApplicationSecret)
class ApplicationSecretAdmin(admin.ModelAdmin):
    list_display = ("id", "application", "is_active", "created_at", "retired_at")
    list_filter = ("is_active",)
    search_fields = ("application__name", "application__client_id")
    list_select_related = ("application",)
    raw_id_fields = ("application",)
    # The secret is shown once at creation (create_application); never here. Secrets are added
    # by the application's "Add a client secret" action and retired by the action below, both
    # through oauth_services (which keep one secret active and fill the checksum the
    # encryption is bound to): this page only lists and shows them.
    exclude = ("secret", "secret_hash", "secret_checksum")
    readonly_fields = ("application", "is_active", "created_at", "retired_at")
    actions = ["retire_secrets"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # retired, never deleted: the retire action keeps one secret active

    @admin.action(description="Retire selected client secrets")
    def retire_secrets(self, request, queryset):
        for client_secret in queryset.filter(is_active=True):
            try:
                retire_client_secret(client_secret=client_secret)
            except ValueError as exc:
                self.message_user(request, f"{client_secret}: {exc}", messages.ERROR)
                continue
            record_staff_action(user=request.user, action="retire secret", target=client_secret)


Application = get_application_model()
admin.site.unregister(Application)


class IntegratorApplicationForm(forms.ModelForm):
    """What we support, and nothing else: the authorization-code grant (with refresh), a
    confidential client (client secrets) or a public one (PKCE S256, no secret), exact
    redirect URIs, and always the consent page. No implicit, password, client-credentials or
    device grant, no "skip authorization", no signing algorithm (accounts/oauth.py)."""

    class Meta:
        model = Application
        fields = ("name", "client_type", "redirect_uris")
        widgets = {"redirect_uris": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"redirect_uris": "One exact URI per line (or separated by spaces)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Validated by the model's clean against the grant we issue.
        self.instance.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        self.instance.algorithm = ""


@admin.register(Application)
class IntegratorApplicationAdmin(admin.ModelAdmin):
    """Integrator applications. Added through oauth_services.create_application, whose client
    secret is shown once on the next page; later secrets come from the rotation action."""

    form = IntegratorApplicationForm
    list_display = ("name", "client_id", "client_type", "created")
    list_filter = ("client_type",)
    search_fields = ("name", "client_id")
    radio_fields = {"client_type": admin.HORIZONTAL}
    actions = ["add_secret"]
    show_full_result_count = False

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "client_type", "redirect_uris")
        return ("name", "client_id", "client_type", "redirect_uris", "created", "updated")

    def get_readonly_fields(self, request, obj=None):
        # A confidential client turned public would keep secrets it no longer needs, and the
        # other way round would lack one: the type is fixed at registration.
        return ("client_id", "client_type", "created", "updated") if obj else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its tokens, channels and writes hang off it; revoke instead

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            record_staff_action(user=request.user, action="change application", target=obj)
            return
        new = create_application(
            name=obj.name, redirect_uris=obj.redirect_uris.split(), client_type=obj.client_type
        )
        obj.pk = new.application.pk
        obj.refresh_from_db()
        obj._state.adding = False
        record_staff_action(user=request.user, action="add application", target=obj)
        if new.client_secret and obj.client_type == Application.CLIENT_CONFIDENTIAL:
            self.message_user(
                request,
                f"{obj.name}: client secret {new.client_secret} (copy it now; it is not shown "
                "again).",
                messages.WARNING,
            )

    @admin.action(description="Add a client secret (rotation; shown once)")
    def add_secret(self, request, queryset):
        for application in queryset:
            secret = add_client_secret(application=application)
            record_staff_action(user=request.user, action="add secret", target=application)
            self.message_user(
                request,
                f"{application.name}: new client secret {secret} (copy it now; it is not shown "
                "again). Retire the old one under Application secrets once it is replaced.",
                messages.WARNING,
            )


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """What staff did, newest first: append-only, so nobody may add, change or delete."""

    list_display = ("at", "actor_username", "action", "object_type", "object_id", "detail")
    list_filter = ("action", "object_type")
    search_fields = ("actor_username", "object_id")
    date_hierarchy = "at"
    ordering = ("-at",)
    show_full_result_count = False
