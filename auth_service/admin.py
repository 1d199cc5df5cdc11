"""Django admin for operators: clients, sessions, enrolled users and their templates.

Read-mostly and never showing secrets (key digests, hashes, ciphertexts), session tokens,
encrypted results or embeddings. Clients are created with `manage.py create_client`, which
is the only place their keys are ever shown."""

from django.contrib import admin

from auth_service.models import ApiClient, AuthSession, EnrolledUser, FaceTemplate


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "client_id", "api_key_prefix", "is_active", "created_at",
                    "last_authenticated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "api_key_prefix"]
    fields = ["name", "client_id", "api_key_prefix", "is_active", "created_at",
              "secret_rotated_at", "last_authenticated_at"]
    readonly_fields = ["client_id", "api_key_prefix", "created_at", "secret_rotated_at",
                       "last_authenticated_at"]

    def has_add_permission(self, request) -> bool:
        # Keys must be generated and shown once: use `manage.py create_client NAME`.
        return False


@admin.register(AuthSession)
class AuthSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "client", "mode", "user_id", "status", "reason", "frames_processed",
                    "samples_collected", "created_at", "completed_at"]
    list_filter = ["status", "mode", "client"]
    search_fields = ["id", "user_id"]
    fields = ["id", "client", "kind", "mode", "user_id", "status", "reason", "target_samples",
              "enrollment_mode", "frames_received", "frames_processed", "samples_collected",
              "liveness", "result", "metadata", "created_at", "expires_at", "started_at",
              "completed_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class FaceTemplateInline(admin.TabularInline):
    model = FaceTemplate
    fields = ["id", "model", "session", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EnrolledUser)
class EnrolledUserAdmin(admin.ModelAdmin):
    list_display = ["user_id", "client", "template_count", "enrollments", "updated_at"]
    list_filter = ["client"]
    search_fields = ["user_id"]
    fields = ["client", "user_id", "enrollments", "created_at", "updated_at"]
    readonly_fields = fields
    inlines = [FaceTemplateInline]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="templates")
    def template_count(self, obj: EnrolledUser) -> int:
        return obj.templates.count()
