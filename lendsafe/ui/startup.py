"""Server start-up: ``app.py`` hands Streamlit an ``st.App`` whose lifespan starts loading the models
(risk models, regulation index, language model) in a background thread before anyone opens a page."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, AsyncIterator

from lendsafe.config import Settings
from lendsafe.errors import LendSafeError
from lendsafe.ui import engine

LOG = logging.getLogger("lendsafe.ui")


@contextlib.asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
    """Start the engine's warm-up when the server starts (settings errors are left for the pages to show)."""
    try:
        engine.engine(Settings())
    except LendSafeError as exc:
        LOG.warning("models not warmed at start-up: %s", exc)
    yield {}
