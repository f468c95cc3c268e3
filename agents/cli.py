"""The ``persona`` command: run a worker, create topics, publish the catalog, replay traffic, tail topics.

Settings come from ``PERSONA_*`` environment variables (see :mod:`persona.settings`); options
given here override them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import click
import orjson

from persona.catalog import data_dir, default_catalog_path, read_catalog
from persona.settings import Settings

__all__ = ["main"]


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
@click.option("--bootstrap", envvar="PERSONA_BOOTSTRAP", default=None,
              help="Kafka bootstrap servers, host:port[,...] (default 127.0.0.1:9092).")
def main(bootstrap: str | None) -> None:
    """persona: real-time personalization on Kafka."""
    if bootstrap:
        os.environ["PERSONA_BOOTSTRAP"] = bootstrap


@main.command()
@click.option("--web-port", type=int, envvar="PERSONA_WEB_PORT", default=6066, show_default=True)
@click.option("--web-host", envvar="PERSONA_WEB_HOST", default="127.0.0.1", show_default=True)
@click.option("--datadir", envvar="PERSONA_DATADIR", default=".local/worker", show_default=True,
              help="Where this worker keeps its RocksDB tables (one folder per worker).")
@click.option("--loglevel", "-l", default="info", show_default=True)
def worker(web_port: int, web_host: str, datadir: str, loglevel: str) -> None:
    """Run a worker: consume events, keep state, serve HTTP."""
    # The app reads its settings when first imported: set them before that.
    os.environ.update(PERSONA_WEB_PORT=str(web_port), PERSONA_WEB_HOST=web_host, PERSONA_DATADIR=datadir)
    from persona.agents.topics import ensure_topics

    created = asyncio.run(ensure_topics(_settings()))
    if created:
        click.echo(f"created topics: {', '.join(created)}", err=True)
    from persona.agents.worker import app

    sys.argv = ["persona-worker", "--datadir", datadir, "worker", "--loglevel", loglevel]
    app.main()


@main.command()
def topics() -> None:
    """Create persona's topics if missing (partitions: PERSONA_PARTITIONS)."""
    from persona.agents.topics import ensure_topics

    created = asyncio.run(ensure_topics(_settings()))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@main.command("load-catalog")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
def load_catalog(path: Path | None) -> None:
    """Publish a catalog CSV to the compacted catalog topic (default: the shared perfume catalog)."""
    from persona.agents.tools import catalog_records, publish

    path = path or default_catalog_path()
    if not path.is_file():
        raise click.ClickException(f"no catalog at {path}: give a CSV, or set PERSONA_DATA to the shared data folder")
    products = read_catalog(path)
    s = _settings()
    n = asyncio.run(publish(s, s.catalog_topic, catalog_records(products), total=len(products), label="items"))
    click.echo(f"published {n} items from {path} to {s.catalog_topic}", err=True)


@main.command("load-relations")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load_relations(path: Path) -> None:
    """Publish product relations (CSV: item_id,related_item_id,kind) for "goes well with" and rules."""
    from persona.agents.tools import publish
    from persona.companions import read_relations

    relations = read_relations(path)
    s = _settings()
    records = ((item.encode(), orjson.dumps(related)) for item, related in relations.items())
    n = asyncio.run(publish(s, s.relations_topic, records, total=len(relations), label="items"))
    click.echo(f"published relations of {n} items to {s.relations_topic}", err=True)


@main.group()
def rules() -> None:
    """The active rule set: check and publish (workers reload it without a restart)."""


@rules.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_check(path: Path) -> None:
    """Validate a rule set file."""
    from persona.rules import InvalidRules, parse_rules

    try:
        ruleset = parse_rules(path.read_bytes())
    except InvalidRules as err:
        raise click.ClickException(f"{path}: {err}") from None
    click.echo(f"{path}: {len(ruleset.rules)} rules, version {ruleset.version}")


@rules.command("publish")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rules_publish(path: Path) -> None:
    """Validate a rule set file and make it the active one on every worker."""
    from persona.agents.tools import publish
    from persona.rules import InvalidRules, parse_rules

    raw = path.read_bytes()
    try:
        ruleset = parse_rules(raw)
    except InvalidRules as err:
        raise click.ClickException(f"{path}: {err} (nothing published)") from None
    s = _settings()
    asyncio.run(publish(s, s.rules_topic, [(b"active", raw)], total=1, label="rule sets"))
    click.echo(f"published rule set {ruleset.version} ({len(ruleset.rules)} rules) to {s.rules_topic}", err=True)


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--format", "fmt", type=click.Choice(["yoochoose", "diginetica", "sequences"]), default=None,
              help="Dataset format (detected from the file when omitted).")
@click.option("--rate", type=float, default=200.0, show_default=True, help="Events per second (0: as fast as possible).")
@click.option("--limit", type=int, default=None, help="Stop after this many events.")
@click.option("--catalog", "catalog_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
def replay(path: Path | None, fmt: str | None, rate: float, limit: int | None, catalog_path: Path | None,
           seed: int) -> None:
    """Replay a public session dataset as GA4 events on catalog items, re-timed to now."""
    from itertools import islice

    from persona.agents.tools import publish
    from persona.datasets import ItemMapper, read_sessions, to_events

    path = path or data_dir() / "sessions" / "yoochoose-clicks-100k_test.txt"
    products = read_catalog(catalog_path or default_catalog_path())
    preference = [p.item_id for p in sorted(products, key=lambda p: (-p.reviews, -p.rating, p.item_id))]
    clicks = read_sessions(path, fmt)
    mapper = ItemMapper.from_clicks(clicks, preference)
    events = to_events(clicks, mapper, start=time.time(), seed=seed)
    events = islice(events, limit) if limit else events
    records = ((e["user_id"].encode(), orjson.dumps(e)) for e in events)
    s = _settings()
    n = asyncio.run(publish(s, s.events_topic, records, total=limit, rate=rate or None, label="events"))
    click.echo(f"replayed {n} events from {path} to {s.events_topic}", err=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def evaluate(ctx: click.Context) -> None:
    """Prequential offline evaluation: persona's generators and blend against POP, S-POP, item-kNN,
    SKNN, V-SKNN (see `persona evaluate --help`)."""
    from persona.evaluate import main as evaluate_main

    sys.exit(evaluate_main(ctx.args))


@main.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record (default: only new ones).")
@click.option("--user", default=None, help="Only records keyed by, or about, this user id.")
@click.option("--max", "limit", type=int, default=None, help="Exit after this many records.")
@click.option("--idle-exit", type=float, default=None, help="Exit after this many seconds without records.")
def tail(topic: str, from_beginning: bool, user: str | None, limit: int | None, idle_exit: float | None) -> None:
    """Print a topic's records, one JSON object a line (pipe to jq)."""
    from persona.agents.tools import tail as tail_records

    async def run() -> None:
        async for record in tail_records(_settings(), topic, from_beginning, user, limit, idle_exit):
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
            sys.stdout.flush()

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, BrokenPipeError):
        pass


if __name__ == "__main__":
    main()
