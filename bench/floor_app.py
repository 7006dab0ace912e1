"""The framework's floor for bench/model_api.py: a minimal FastAPI app on the same uvicorn with
the same options as ``crispml serve``, that parses the JSON body and answers a constant, with no
model, no key check and no batching. What it costs per request is what any FastAPI model server
pays before its model runs.

    .venv/bin/python bench/floor_app.py PORT
"""

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

from crispml.serving.server import limit_malloc_arenas, server_options

app = FastAPI()


@app.post("/invocations")
@app.post("/predict")
async def answer(request: Request) -> dict[str, Any]:
    body = await request.json()
    return {"predictions": [len(body)]}


if __name__ == "__main__":
    limit_malloc_arenas()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info",  # as serve
                **server_options())  # fmt: skip
