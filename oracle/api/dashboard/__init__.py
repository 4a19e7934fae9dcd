"""The dashboard served by the operator API: live requests, operators, disputes and models, and a try-it page.

Build it with :func:`dashboard_router` and hand it to ``create_app(control, extra_routers=[...])`` (or
``oracle.app.start_api(node, extra_routers=[...])``). It only reads the chain, except ``POST /api/try`` when a
``try_signer`` is given. Pages and scripts live in ``static/`` (plain HTML, CSS and JavaScript).
"""

from __future__ import annotations

from oracle.api.dashboard.indexer import DashboardIndexer
from oracle.api.dashboard.router import dashboard_router

__all__ = ["DashboardIndexer", "dashboard_router"]
