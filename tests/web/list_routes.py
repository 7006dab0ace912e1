"""Print every route of the composed app as JSON: [kind, path, methods]. Run as a subprocess,
because building the app creates Streamlit's per-process Runtime."""

import json
import sys
import tempfile

from starlette.routing import Mount, Route, WebSocketRoute

from crispml.app import create_app
from crispml.settings import Settings

app = create_app(Settings(home=tempfile.mkdtemp()))
routes = []
for route in app._build_starlette_app().routes:  # the real route table Streamlit serves
    if isinstance(route, WebSocketRoute):
        routes.append(["ws", route.path, []])
    elif isinstance(route, Route):
        routes.append(["http", route.path, sorted(route.methods or [])])
    elif isinstance(route, Mount):
        routes.append(["mount", route.path, []])
    else:
        routes.append(["other", repr(route), []])
json.dump(routes, sys.stdout)
