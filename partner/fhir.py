"""FHIR resources in the partner topics, and the references between them.

A FHIR resource arrives either as the record's payload (content-type application/fhir+json) or
wrapped in a protobuf message with a `json` field (iop.events.v1.FhirResourcePublished,
CrisisFhirResource). Resources reference each other by literal relative references,
`{"reference": "<Type>/<id>"}` (Appointment -> Patient/Practitioner, Encounter -> Appointment,
Observation -> Patient/Encounter, ...): a partner's mirror resolves each to a resource it
received. A logical reference (an identifier only, e.g. an emergency contact whose details
the platform does not publish) is not expected to resolve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from partner.envelope import FHIR_JSON, Event

RELATIVE_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def resource_of(event: Event) -> dict[str, Any] | None:
    """The FHIR resource an event carries, or None when it carries none."""
    if event.content_type == FHIR_JSON:
        return event.payload
    wrapped = event.payload.get("json")
    if isinstance(wrapped, str) and event.payload.get("resource_type"):
        resource = json.loads(wrapped)
        return resource if isinstance(resource, dict) and "resourceType" in resource else None
    return None


def references(resource: Any) -> Iterator[tuple[str, str]]:
    """Every literal relative reference in a resource, as (resourceType, id)."""
    if isinstance(resource, dict):
        value = resource.get("reference")
        if isinstance(value, str) and (match := RELATIVE_REFERENCE.match(value)):
            yield match.group(1), match.group(2)
        for item in resource.values():
            yield from references(item)
    elif isinstance(resource, list):
        for item in resource:
            yield from references(item)
