"""A Faust app that does nothing with the events: the ceiling for any Faust agent on this machine.

Configured like persona's app (raw serializers, same Faust defaults for consuming and committing),
but no tables, no web server. Its one agent iterates ``stream.events()`` and, once it has seen
``NOOP_EVENTS`` events, writes one JSON object to the file ``NOOP_RESULT``: the wall-clock times
of the first and the last event, the CPU seconds of the
process between them, and the count. Run by benchmarks/ingest.py:

    NOOP_APP_ID=... NOOP_TOPIC=... NOOP_EVENTS=50000 NOOP_BOOTSTRAP=127.0.0.1:19092 \
    NOOP_DATADIR=... NOOP_RESULT=out.json python benchmarks/noop_app.py worker -l warn
"""

import os
import time

import faust

app = faust.App(
    os.environ["NOOP_APP_ID"],
    broker=f"kafka://{os.environ['NOOP_BOOTSTRAP']}",
    store="memory://",
    autodiscover=False,
    web_enabled=False,
    datadir=os.environ["NOOP_DATADIR"],
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=8,
    consumer_auto_offset_reset=os.environ.get("NOOP_OFFSET_RESET", "earliest"),  # "latest": only new traffic
)
topic = app.topic(*os.environ["NOOP_TOPIC"].split(","), key_type=bytes, value_type=bytes)  # one or more
N = int(os.environ["NOOP_EVENTS"])


@app.agent(topic)
async def noop(stream):
    seen, first, first_cpu = 0, 0.0, 0.0
    async for event in stream.events():
        seen += 1
        if seen == 1:
            first, first_cpu = time.time(), time.process_time()
        if seen == N:
            cpu = time.process_time() - first_cpu
            with open(os.environ["NOOP_RESULT"], "w") as f:  # Faust redirects stdout to its log
                f.write(f'{{"first": {first}, "last": {time.time()}, "cpu": {cpu}, "events": {seen}}}')


if __name__ == "__main__":
    app.main()
