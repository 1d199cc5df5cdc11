"""Django admin for operators: clients, sessions, enrolled users and their templates.

Read-mostly and never showing secrets (key digests, hashes, ciphertexts), session tokens,
encrypted results or embeddings. Clients are created with `manage.py create_client`, which
is the only place their keys are ever shown."""

from django import forms
from django.conf import settings
from django.contrib import admin

from auth_service.errors import InvalidRequest
from auth_service.models import (
    ApiClient,
    AuthSession,
    EnrolledUser,
    FaceTemplate,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from auth_service.services import crypto, gallery, webhooks
from face_engine import matching


class ApiClientForm(forms.ModelForm):
    """The client's default security level: one of the calibrated levels, or the server's."""

    default_match_level = forms.ChoiceField(
        required=False,
        choices=lambda: [("", f"server default ({settings.FACEAUTH_DEFAULT_MATCH_LEVEL})")] + [
            (level.name, f"{level.name} (false match rate {level.target_fmr:g})")
            for level in matching.LEVELS.values()
        ],
        help_text=ApiClient._meta.get_field("default_match_level").help_text,
    )
    default_language = forms.ChoiceField(
        required=False,
        choices=lambda: [("", f"server default ({settings.FACEAUTH_DEFAULT_LANGUAGE})"), *settings.LANGUAGES],
        help_text=ApiClient._meta.get_field("default_language").help_text,
    )

    class Meta:
        model = ApiClient
        fields = ["name", "is_active", "default_match_level", "default_language"]


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ["name", "client_id", "api_key_prefix", "is_active", "default_match_level",
                    "default_language", "created_at", "last_authenticated_at"]
    list_filter = ["is_active", "default_match_level", "default_language"]
    search_fields = ["name", "api_key_prefix"]
    fields = ["name", "client_id", "api_key_prefix", "is_active", "default_match_level", "default_language",
              "created_at", "secret_rotated_at", "last_authenticated_at"]
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
    fields = ["id", "client", "kind", "mode", "user_id", "language", "status", "reason", "target_samples",
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

    # Deletions here bypass services.gallery: tell the gallery backend as it would.
    def save_formset(self, request, form, formset, change) -> None:
        removed = [inline.instance.pk for inline in formset.deleted_forms if inline.instance.pk]
        super().save_formset(request, form, formset, change)
        gallery.templates_removed(client=form.instance.client, template_ids=removed)

    def delete_model(self, request, obj: EnrolledUser) -> None:
        removed = list(obj.templates.values_list("id", flat=True))
        super().delete_model(request, obj)
        gallery.templates_removed(client=obj.client, template_ids=removed)

    def delete_queryset(self, request, queryset) -> None:
        removed = list(FaceTemplate.objects.filter(user__in=queryset).values_list("user__client", "id"))
        super().delete_queryset(request, queryset)
        for client in ApiClient.objects.filter(pk__in={client_id for client_id, _ in removed}):
            gallery.templates_removed(
                client=client, template_ids=[i for client_id, i in removed if client_id == client.pk]
            )

    @admin.display(description="templates")
    def template_count(self, obj: EnrolledUser) -> int:
        return obj.templates.count()


class WebhookEndpointForm(forms.ModelForm):
    """The signing secret is write-only: typed in to set or replace it, never shown."""

    url = forms.URLField(max_length=500, assume_scheme="https")
    new_secret = forms.CharField(
        required=False, min_length=webhooks.MIN_SECRET_LENGTH, strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Set or replace the signing secret (required for a new endpoint).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["client", "url", "is_active"]

    def clean_url(self) -> str:
        try:
            webhooks.check_url(self.cleaned_data["url"])
        except InvalidRequest as exc:
            raise forms.ValidationError(exc.message) from None
        return self.cleaned_data["url"]

    def clean(self) -> dict:
        data = super().clean()
        if self.instance.pk is None and not data.get("new_secret"):
            self.add_error("new_secret", "A new endpoint needs a signing secret.")
        return data

    def save(self, commit: bool = True) -> WebhookEndpoint:
        if self.cleaned_data.get("new_secret"):
            self.instance.secret_encrypted = crypto.seal(self.cleaned_data["new_secret"])
        return super().save(commit)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["client", "url", "is_active", "updated_at"]
    list_filter = ["is_active"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "url", "started_at", "duration_ms", "status_code", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read-only (the body holds only what the status endpoint shows)."""

    list_display = ["id", "client", "session", "event", "status", "attempts", "next_attempt_at",
                    "delivered_at"]
    list_filter = ["status", "event", "client"]
    search_fields = ["id", "session__id"]
    fields = ["id", "client", "session", "event", "status", "attempts", "next_attempt_at",
              "delivered_at", "created_at", "body"]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
