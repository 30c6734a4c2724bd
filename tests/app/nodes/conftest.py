from tests.app.usage.conftest import ingest

__all__ = ["ingest"]
