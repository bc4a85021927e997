from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Lightbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sharing.dicom import configure_pydicom

        configure_pydicom()

        from sharing.logging import install_token_redaction

        install_token_redaction()

        from sharing import receivers

        receivers.connect()

        # Registers the tasks with Celery in every process, so sharing.queue finds them by name.
        from sharing import tasks  # noqa: F401
