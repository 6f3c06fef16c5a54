from django.contrib import admin

from accounts.models import Account, ApplicationSecret, Profile


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


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
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
    # The secret is shown once at creation (create_application); never here.
    exclude = ("secret", "secret_hash", "secret_checksum")
    readonly_fields = ("created_at",)
