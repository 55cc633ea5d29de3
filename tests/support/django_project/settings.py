"""Settings of the test project: the DLQ app, a shop app with a replay handler."""

from __future__ import annotations

import os

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.support.django_project.urls"
INSTALLED_APPS = [
    "dlq.contrib.django",
    "tests.support.django_project.shop",
]
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}  # the project itself needs no database
USE_TZ = True

DLQ = {
    "TEMPORAL_ADDRESS": os.environ["TEST_DLQ_TEMPORAL_ADDRESS"],
    "TASK_QUEUE": os.environ["TEST_DLQ_TASK_QUEUE"],
    "DATABASE_URL": os.environ["TEST_DLQ_DATABASE_URL"],
    "OUTBOX_PATH": os.environ["TEST_DLQ_OUTBOX_PATH"],
    "STORE_TIMEOUT": 20,
    "MAINTENANCE_ENABLED": False,
    # The dev server of the tests speaks plaintext whatever the shell's profile says.
    "TEMPORAL_ENVCONFIG": False,
}
