"""What the API's startup leaves behind for the rest of the process's life."""

from __future__ import annotations

import gc

from tests.integration.app_harness import running_app, settings_for


def test_objects_built_at_startup_are_kept_out_of_full_collections(
    shared_database_url: str,
) -> None:
    gc.unfreeze()
    with running_app(settings_for(shared_database_url)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000, "a full collection would walk the whole app"
    gc.unfreeze()
