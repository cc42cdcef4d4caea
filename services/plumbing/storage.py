"""MongoDB access through PyMongo's async API: one database per service.

Works on MongoDB and on FerretDB 1.x: no multi-document transactions, so
invariants are unique indexes and atomicity is per document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from services.plumbing.settings import Settings

log = logging.getLogger(__name__)

Document = dict[str, Any]


@dataclass(frozen=True)
class IndexSpec:
    """An index declared in code next to the collection that needs it."""

    collection: str
    keys: list[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def mongo_client(settings: Settings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        appname="iop",
    )


def service_database(client: AsyncMongoClient[Document], settings: Settings, service: str) -> AsyncDatabase[Document]:
    return client[f"{settings.mongodb_database_prefix}{service}"]


NOT_IMPLEMENTED = 238


async def ensure_indexes(db: AsyncDatabase[Document], specs: list[IndexSpec]) -> None:
    for spec in specs:
        name = spec.name or "_".join(f"{k}_{d}" for k, d in spec.keys)
        try:
            await db[spec.collection].create_index(spec.keys, unique=spec.unique, name=name, **spec.options)
        except OperationFailure as exc:
            # FerretDB 1.x has no TTL indexes: keep the index, say that expiry is not enforced.
            if exc.code != NOT_IMPLEMENTED or "expireAfterSeconds" not in spec.options:
                raise
            options = {k: v for k, v in spec.options.items() if k != "expireAfterSeconds"}
            await db[spec.collection].create_index(spec.keys, unique=spec.unique, name=name, **options)
            log.warning("store has no TTL indexes: %s.%s is not expired automatically", db.name, spec.collection)
