"""Cross-cutting plumbing shared by the four services.

Settings, telemetry, the CloudEvents envelope and Kafka bus, the transactional
outbox, the idempotent consumer base, gRPC server/client bootstrap, auth, and
the MongoDB connection. Nothing in this package knows about sessions,
clinicians or crises: domain logic lives in each service's own folder.
"""
