"""The public surface: every exported name resolves, and ``import dlq`` stays light."""

from __future__ import annotations

import subprocess
import sys

import dlq


def test_every_exported_name_resolves_to_its_module() -> None:
    assert sorted(dlq.__all__) == sorted(dlq._EXPORTS)
    for name in dlq.__all__:
        value = getattr(dlq, name)
        assert value is not None
        if hasattr(value, "__module__") and isinstance(value, type):
            assert value.__module__.startswith("dlq.")


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        dlq.no_such_name  # noqa: B018 - the access is the test
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("dlq.no_such_name resolved")


def test_import_dlq_loads_neither_temporal_nor_sql() -> None:
    code = ("import sys, dlq; heavy = [m for m in ('temporalio', 'sqlalchemy', 'sqlmodel', "
            "'typer', 'rich', 'alembic') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    assert out.stdout.strip() == ""


def test_storing_needs_no_sql_driver_until_a_read() -> None:
    code = ("import sys, dlq; dlq.DLQService; dlq.store_to_dlq; "
            "print('sqlalchemy' in sys.modules, 'typer' in sys.modules, "
            "'temporalio.worker' in sys.modules, 'alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    assert out.stdout.split() == ["False", "False", "False", "False"]


def test_workflows_and_activities_live_in_the_dlq_namespace() -> None:
    from dlq.activities.entry import EntryActivities
    from dlq.workflows.entry import DLQEntryWorkflow

    assert DLQEntryWorkflow.__module__ == "dlq.workflows.entry"
    assert EntryActivities.__module__ == "dlq.activities.entry"
