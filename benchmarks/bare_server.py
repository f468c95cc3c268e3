"""A bare aiohttp server answering GET /recommendations/{user_id} with a fixed JSON body.

    python benchmarks/bare_server.py --port 7000 --body answer.json

The baseline of benchmarks/serving.py: same HTTP stack (aiohttp, as Faust's web server) and the
same answer size as persona, no work behind it. Loopback only.
"""

import argparse
from pathlib import Path

from aiohttp import web


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--body", type=Path, required=True)
    args = ap.parse_args()
    body = args.body.read_bytes()

    async def recommendations(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/recommendations/{user_id}", recommendations)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
