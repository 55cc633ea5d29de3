"""The shop app registers its replay handler when Django starts."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    """Imports the replay handlers at start-up, so ``dlq_worker`` serves them."""

    name = "tests.support.django_project.shop"
    label = "shop"

    def ready(self) -> None:
        from tests.support.django_project.shop import handlers  # noqa: F401 - registers
