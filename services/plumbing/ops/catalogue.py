"""Discovers what the services declare: their topics and the event messages.

Nothing here is a hard-coded list: topics come from every `services.<service>.topics`
module (module-level `Topic` objects and lists of them), event messages from the
generated code under gen/python/iop/events/v1, and comments from the .proto sources.

Which message types a topic carries: `Topic.message_types` (full names) when the Topic
has that field and it is set; otherwise read from the topic's description: every event message named in it,
as a full name (`iop.events.v1.SessionScheduled`) or as a bare name
(`SessionScheduled`), matched on word boundaries. A description that says
`application/fhir+json` declares FHIR JSON payloads, whose resource types are the
FHIR resource names it mentions.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor

import services
from services.plumbing.bus import Topic

ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = ROOT / "proto"
EVENTS_PACKAGE = "iop.events.v1"
FHIR_JSON = "application/fhir+json"
# FHIR R4B resource types this platform projects; a description naming one of them
# next to application/fhir+json declares that resource type as a payload.
FHIR_RESOURCES = (
    "Appointment",
    "CarePlan",
    "Consent",
    "Encounter",
    "Flag",
    "Observation",
    "Patient",
    "Practitioner",
    "RiskAssessment",
)


@dataclass(frozen=True)
class DeclaredTopic:
    """A topic and the service whose `topics` module owns its declaration."""

    topic: Topic
    owner: str
    also_declared_by: tuple[str, ...] = ()


@dataclass
class EventCatalogue:
    topics: list[DeclaredTopic]
    messages: dict[str, Descriptor]  # full name -> descriptor (top-level event-package messages)
    comments: dict[str, str] = field(default_factory=dict)  # full name (message, field, enum value) -> comment
    warnings: list[str] = field(default_factory=list)

    def message_types(self, topic: Topic) -> list[str]:
        """Protobuf full names of the messages `topic` carries (sorted, de-duplicated).

        An explicit `Topic.message_types` (full names; proposed field) wins over the description."""
        explicit: tuple[str, ...] = tuple(getattr(topic, "message_types", ()) or ())
        if explicit:
            unknown = [m for m in explicit if m not in self.messages]
            if unknown:
                raise ValueError(f"{topic.name}: message_types names unknown messages {unknown}")
            return sorted(set(explicit))
        found: set[str] = set()
        for full_name, desc in self.messages.items():
            pattern = rf"(?<![\w.])(?:{re.escape(EVENTS_PACKAGE)}\.)?{re.escape(desc.name)}(?![\w])"
            if re.search(pattern, topic.description):
                found.add(full_name)
        return sorted(found)

    def fhir_resources(self, topic: Topic) -> list[str]:
        if FHIR_JSON not in topic.description:
            return []
        return sorted(r for r in FHIR_RESOURCES if re.search(rf"\b{r}\b", topic.description))


def service_packages() -> list[str]:
    """Every service package under services/ (the plumbing is not a service)."""
    return sorted(m.name for m in pkgutil.iter_modules(services.__path__) if m.ispkg and m.name != "plumbing")


def _topics_in(module: ModuleType) -> list[Topic]:
    out: list[Topic] = []
    for value in vars(module).values():
        if isinstance(value, Topic):
            out.append(value)
        elif isinstance(value, list | tuple):
            out.extend(v for v in value if isinstance(v, Topic))
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _domain_owner(topic_name: str, declarers: list[str]) -> str:
    """The declaring service whose name matches the topic's domain (`iop.<domain>.<fact>.vN`).

    `scheduling` matches `scheduler`: the longest common prefix of at least five letters wins.
    """
    parts = topic_name.split(".")
    domain = parts[1] if len(parts) > 2 else ""
    best, best_len = declarers[0], 0
    for service in declarers:
        common = _common_prefix(service, domain)
        if common >= 5 and common > best_len:
            best, best_len = service, common
    return best


def discover_topics(packages: list[str] | None = None) -> tuple[list[DeclaredTopic], list[str]]:
    """All topics declared by the services' `topics` modules, one per name, sorted by name."""
    warnings: list[str] = []
    by_name: dict[str, dict[str, Topic]] = {}
    for package in packages if packages is not None else service_packages():
        try:
            module = importlib.import_module(f"services.{package}.topics")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{package}.topics":
                raise
            continue
        for topic in _topics_in(module):
            by_name.setdefault(topic.name, {})[package] = topic
    out: list[DeclaredTopic] = []
    for name in sorted(by_name):
        declarers = sorted(by_name[name])
        owner = _domain_owner(name, declarers)
        others = tuple(d for d in declarers if d != owner)
        if any(by_name[name][o].partner_facing != by_name[name][owner].partner_facing for o in others):
            warnings.append(f"{name}: declarations disagree on partner_facing; using {owner}'s")
        out.append(DeclaredTopic(by_name[name][owner], owner, others))
    return out, warnings


def discover_messages(package: str = EVENTS_PACKAGE) -> dict[str, Descriptor]:
    """Top-level messages of the generated event modules (gen/python/iop/events/v1/*_pb2.py)."""
    pkg = importlib.import_module(package)
    out: dict[str, Descriptor] = {}
    for module_info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{package}.{module_info.name}")
        file_desc = module.DESCRIPTOR
        for desc in file_desc.message_types_by_name.values():
            out[desc.full_name] = desc
    return dict(sorted(out.items()))


def referenced_types(roots: list[Descriptor]) -> tuple[dict[str, Descriptor], dict[str, EnumDescriptor]]:
    """Every message and enum reachable from `roots` through fields (roots included)."""
    messages: dict[str, Descriptor] = {}
    enums: dict[str, EnumDescriptor] = {}
    stack = list(roots)
    while stack:
        desc = stack.pop()
        if desc.full_name in messages:
            continue
        messages[desc.full_name] = desc
        for f in desc.fields:
            if f.message_type is not None:
                stack.append(f.message_type)
            if f.enum_type is not None:
                enums[f.enum_type.full_name] = f.enum_type
    return dict(sorted(messages.items())), dict(sorted(enums.items()))


def _clean(comment: str) -> str:
    return " ".join(line.strip() for line in comment.strip().splitlines() if line.strip())


def proto_comments(proto_root: Path = PROTO_ROOT, subdir: str = "iop/events/v1") -> dict[str, str]:
    """Leading/trailing comments of messages, fields, enums and enum values, by full name.

    Compiles the .proto sources with source info (grpc_tools' protoc, a dev dependency);
    returns {} when the compiler or the sources are not there (field names and types
    still come from the generated descriptors).
    """
    files = sorted(str(p.relative_to(proto_root)) for p in (proto_root / subdir).glob("*.proto"))
    if not files:
        return {}
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        return {}
    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.binpb"
        args = ["protoc", f"-I{proto_root}", f"-I{include}", "--include_source_info", f"--descriptor_set_out={out}"]
        if protoc.main([*args, *files]) != 0:
            return {}
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    comments: dict[str, str] = {}
    for file in fds.file:
        names = _path_names(file)
        for loc in file.source_code_info.location:
            text = _clean(loc.leading_comments) or _clean(loc.trailing_comments)
            name = names.get(tuple(loc.path))
            if text and name:
                comments[name] = text
    return dict(sorted(comments.items()))


def _path_names(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Source-info paths -> full names (4 = message_type, 2 = field, 3 = nested, 4 = nested enum, 5 = enum)."""
    out: dict[tuple[int, ...], str] = {}

    def enum(path: tuple[int, ...], prefix: str, e: descriptor_pb2.EnumDescriptorProto) -> None:
        full = f"{prefix}.{e.name}"
        out[path] = full
        for i, v in enumerate(e.value):
            out[(*path, 2, i)] = f"{full}.{v.name}"

    def message(path: tuple[int, ...], prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        full = f"{prefix}.{m.name}"
        out[path] = full
        for i, f in enumerate(m.field):
            out[(*path, 2, i)] = f"{full}.{f.name}"
        for i, nested in enumerate(m.nested_type):
            message((*path, 3, i), full, nested)
        for i, e in enumerate(m.enum_type):
            enum((*path, 4, i), full, e)

    for i, m in enumerate(file.message_type):
        message((4, i), file.package, m)
    for i, e in enumerate(file.enum_type):
        enum((5, i), file.package, e)
    return out


def load_catalogue() -> EventCatalogue:
    topics, warnings = discover_topics()
    catalogue = EventCatalogue(
        topics=topics, messages=discover_messages(), comments=proto_comments(), warnings=warnings
    )
    for declared in topics:
        t = declared.topic
        if t.partner_facing and not catalogue.message_types(t) and not catalogue.fhir_resources(t):
            catalogue.warnings.append(f"{t.name}: its description names no event message nor FHIR JSON resource")
    return catalogue
