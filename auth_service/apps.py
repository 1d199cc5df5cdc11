from django.apps import AppConfig


class AuthServiceConfig(AppConfig):
    name = "auth_service"
    verbose_name = "FaceAuth"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks (warnings about development keys and open origins).
        from auth_service import checks  # noqa: F401
