"""System checks (`manage.py check`, shown at runserver start) for unsafe configurations."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=False)
def faceauth_configuration(app_configs, **kwargs) -> list[Warning]:
    warnings = []
    if settings.FACEAUTH_DEVELOPMENT_SECRET:
        warnings.append(
            Warning(
                "DJANGO_SECRET_KEY is not set: using the generated development key in "
                f"{settings.FACEAUTH_DATA_DIR / 'secret_key'}.",
                hint="Production: set DJANGO_SECRET_KEY and FACEAUTH_ENCRYPTION_KEY.",
                id="faceauth.W001",
            )
        )
    elif not settings.FACEAUTH_ENCRYPTION_KEY:
        warnings.append(
            Warning(
                "FACEAUTH_ENCRYPTION_KEY is not set: client secrets are encrypted under a key "
                "derived from DJANGO_SECRET_KEY, so rotating that key locks every client out.",
                hint="Set FACEAUTH_ENCRYPTION_KEY to a Fernet key (see docs/operations.md).",
                id="faceauth.W002",
            )
        )
    if not settings.DEBUG and "*" in settings.FACEAUTH_ALLOWED_ORIGINS:
        warnings.append(
            Warning(
                "FACEAUTH_ALLOWED_ORIGINS allows any web origin.",
                hint="List the origins of the pages that use FaceAuth.",
                id="faceauth.W003",
            )
        )
    return warnings
