"""What leaves this process: the one place that decides which hosts, storage locations and
environment variables the application hands to the outside world.

- :func:`url_problem` / :func:`url_guard`: outgoing HTTP (LLM endpoints, webhooks, Databricks hosts)
  never goes to loopback, link-local or private addresses unless ``OUTBOUND_ALLOWED_HOSTS`` lists
  them, and never to a cloud metadata service. ``url_problem`` checks what a URL says (for forms
  and the API: a 400 at definition time); ``url_guard`` also resolves the name just before a call,
  so a public-looking name that points inside is refused too.
- :func:`delta_location_problem`: Delta tables only under ``DELTA_ALLOWED_ROOTS`` (or ``DELTA_ROOT``).
- :func:`uc_schema_problem`: Unity Catalog tables only in the schemas ``UC_ALLOWED_SCHEMAS`` gives
  the project.
- :func:`credential_env_problem`: LLM endpoints name only ``SECRET_ENV_PREFIX`` variables.
- :func:`environ_without_secrets`: the environment of processes that run model code.

Messages never repeat the URL or a secret: they are shown to engineers, and an internal address is
itself information. The parsers run at start-up (``reviewapp/settings.py``); a bad value stops it.
Standard library only, and no app is imported: the rules come in as :class:`OutboundRules`, which the
app builds from its settings (``OutboundRules.from_settings``); this module never reads settings.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines.adapters.errors import PermanentPipelineError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services (AWS, GCP, Azure, Alibaba, Oracle, AWS IPv6): never reachable.
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
METADATA_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local: 169.254.169.254 and the ECS/Azure variants
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
)
HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")

# Variables a credential_env may never name, whatever the prefix (belt and braces).
FORBIDDEN_ENV = frozenset(
    {
        "DATABASE_URL",
        "SECRET_KEY",
        "CELERY_BROKER_URL",
        "CACHE_URL",
        "DELTA_STORAGE_OPTIONS",
        "PROMOTION_WEBHOOK_SECRET",
        "DATABRICKS_TOKEN",
        "DATABRICKS_CLIENT_SECRET",
    }
)
# Removed from the environment of processes that run model code: the application's own secrets,
# every credential-looking name, cloud credentials. MLFLOW_* stays: the server reads the model with it.
STRIPPED_ENV = FORBIDDEN_ENV | {"DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "MLFLOW_UI_URL"}
STRIPPED_ENV_PREFIXES = ("DATABRICKS_", "AWS_", "AZURE_", "GOOGLE_", "GCP_", "ARM_", "POSTGRES", "PG", "REDIS")
CREDENTIAL_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "CREDENTIAL")


DEFAULT_SECRET_ENV_PREFIX = "REVIEWDESK_SECRET_"  # noqa: S105 - a variable-name prefix, not a secret


@dataclass(frozen=True)
class OutboundRules:
    """What the operator lets the application reach: the isolation settings, as one value."""

    allowed_hosts: tuple[str, ...] = ()  # OUTBOUND_ALLOWED_HOSTS: names, addresses, CIDR networks
    delta_roots: tuple[str, ...] = ()  # DELTA_ALLOWED_ROOTS plus DELTA_ROOT
    uc_allowed_schemas: str = ""  # UC_ALLOWED_SCHEMAS, unparsed (see uc_schemas_parse)
    secret_env_prefix: str = DEFAULT_SECRET_ENV_PREFIX

    @classmethod
    def from_settings(cls, settings: Any) -> OutboundRules:
        return cls(
            allowed_hosts=tuple(getattr(settings, "OUTBOUND_ALLOWED_HOSTS", ())),
            delta_roots=(*getattr(settings, "DELTA_ALLOWED_ROOTS", ()), str(settings.DELTA_ROOT)),
            uc_allowed_schemas=str(getattr(settings, "UC_ALLOWED_SCHEMAS_RAW", "") or ""),
            secret_env_prefix=str(getattr(settings, "SECRET_ENV_PREFIX", DEFAULT_SECRET_ENV_PREFIX)),
        )


# --- parsing (start-up) ----------------------------------------------------------------------------


def allowed_hosts_parse(entries: list[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """``OUTBOUND_ALLOWED_HOSTS`` entries as (host names, networks); ValueError names a bad entry."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        try:
            network = ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            network = None
        if network is not None:
            if any(network.overlaps(m) for m in METADATA_NETWORKS if m.version == network.version):
                raise ValueError(f"{raw!r} covers link-local or cloud metadata addresses, which are never allowed")
            networks.append(network)
        elif HOST_RE.match(entry):
            if entry.rstrip(".") in METADATA_HOSTS:
                raise ValueError(f"{raw!r} is a cloud metadata host, which is never allowed")
            names.add(entry.rstrip("."))
        else:
            raise ValueError(f"{raw!r} is neither a host name, an IP address nor a CIDR network")
    return frozenset(names), tuple(networks)


def delta_roots_parse(entries: list[str]) -> list[str]:
    """``DELTA_ALLOWED_ROOTS`` as normalised prefixes; ValueError names a bad entry."""
    roots = []
    for raw in entries:
        entry = raw.strip()
        if "://" in entry:
            if entry.split("://", 1)[0].lower() == "file":
                entry = entry.split("://", 1)[1]
            else:
                problem = _object_store_problem(entry)
                if problem:
                    raise ValueError(f"{raw!r}: {problem}")
                roots.append(_normal_location(entry))
                continue
        if not Path(entry).is_absolute():
            raise ValueError(f"{raw!r} is not an absolute folder or an object-store prefix (s3://bucket/...)")
        roots.append(_normal_location(entry))
    return roots


def uc_schemas_parse(raw: str) -> dict[str, list[tuple[str, str]]]:
    """``UC_ALLOWED_SCHEMAS`` as {project slug or "*": [(catalog, schema or "*")]}; ValueError says why.

    Format: rules separated by ``;``, each ``<slug or *>=<catalog.schema>[,<catalog.schema>...]``.
    """
    rules: dict[str, list[tuple[str, str]]] = {}
    for rule in (r.strip() for r in (raw or "").split(";")):
        if not rule:
            continue
        who, sep, schemas = rule.partition("=")
        who = who.strip()
        if not sep or not (who == "*" or SLUG_RE.match(who)):
            raise ValueError(f"{rule!r} is not '<project slug or *>=<catalog.schema>,...'")
        for item in (s.strip() for s in schemas.split(",")):
            catalog, dot, schema = item.partition(".")
            if not dot or not IDENTIFIER_RE.match(catalog) or not (schema == "*" or IDENTIFIER_RE.match(schema)):
                raise ValueError(f"{item!r} in {rule!r} is not catalog.schema or catalog.*")
            rules.setdefault(who, []).append((catalog.lower(), schema.lower()))
    return rules


# --- outgoing HTTP -----------------------------------------------------------------------------------


def _address_problem(address: IPAddress, networks: tuple[IPNetwork, ...]) -> str | None:
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped  # type: ignore[union-attr]
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved address"
    if any(address in m for m in METADATA_NETWORKS if m.version == address.version):
        return "a link-local or cloud metadata address"
    if address.is_global:
        return None
    if any(address in n for n in networks if n.version == address.version):
        return None
    kind = "a loopback" if address.is_loopback else "a private"
    return f"{kind} address, which OUTBOUND_ALLOWED_HOSTS does not allow"


def _host_problem(host: str, *, rules: OutboundRules, resolve: bool) -> str | None:
    names, networks = allowed_hosts_parse(list(rules.allowed_hosts))
    host = host.strip("[]").lower().rstrip(".")
    if not host:
        return "has no host"
    if host in METADATA_HOSTS or (host.endswith(".internal") and host.startswith("metadata")):
        return "points to a cloud metadata service"
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        problem = _address_problem(literal, networks)
        return f"points to {problem}" if problem else None
    if host in names:
        # Listed by name: trusted, but never when the name resolves to a metadata address.
        addresses = _resolve(host) if resolve else []
        for address in addresses:
            if any(address in m for m in METADATA_NETWORKS if m.version == address.version):
                return "points to a link-local or cloud metadata address"
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return "points to a loopback address, which OUTBOUND_ALLOWED_HOSTS does not allow"
    if not resolve:
        return None
    for address in _resolve(host):
        problem = _address_problem(address, networks)
        if problem:
            return f"resolves to {problem}"
    return None


def _resolve(host: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []  # unresolvable: the call itself fails with a connection error
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


def url_problem(url: str, *, rules: OutboundRules, resolve: bool = False) -> str | None:
    """Why the application must not call ``url``, or None. The message never repeats the URL."""
    try:
        parts = urlsplit(url or "")
        host = parts.hostname or ""
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if parts.username or parts.password:
        return "must not carry a user name or password (name a credential variable instead)"
    return _host_problem(host, rules=rules, resolve=resolve)


def url_guard(url: str, *, rules: OutboundRules, what: str, system: str) -> None:
    """Raise PermanentPipelineError (without the URL) unless ``url`` may be called now."""
    problem = url_problem(url, rules=rules, resolve=True)
    if problem:
        raise PermanentPipelineError(f"{what}: the URL {problem}", system=system)


# --- storage -----------------------------------------------------------------------------------------


def _object_store_problem(uri: str) -> str | None:
    _scheme, _, rest = uri.partition("://")
    authority = rest.split("/", 1)[0]
    host = authority.rsplit("@", 1)[-1].split(":", 1)[0].strip("[]").lower()
    if not host:
        return "has no bucket or container"
    if host in METADATA_HOSTS or host.startswith("metadata."):
        return "names a cloud metadata host"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if any(address in m for m in METADATA_NETWORKS if m.version == address.version) or address.is_loopback:
        return "names a link-local, loopback or metadata address"
    return None


def _normal_location(uri: str) -> str:
    """A comparable form: local paths resolved (symlinks followed), object-store URIs lower-cased scheme."""
    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        return f"{scheme.lower()}://{rest.strip('/')}/"
    return os.path.realpath(uri).rstrip("/") + "/"


def location_normal(uri: str) -> str:
    return _normal_location(uri)


def locations_overlap(a: str, b: str) -> bool:
    """True when one location is the other or lies under it (normalised forms, see ``location_normal``)."""
    na, nb = _normal_location(a), _normal_location(b)
    return na.startswith(nb) or nb.startswith(na)


def delta_location_problem(uri: str, *, rules: OutboundRules) -> str | None:
    """Why a Delta table may not be at ``uri`` (outside the allowed roots, a metadata host), or None."""
    if "://" in uri:
        problem = _object_store_problem(uri)
        if problem:
            return f"The object-store URI {problem}, which is never accepted."
    roots = delta_roots_parse(list(rules.delta_roots))
    location = _normal_location(uri)
    if any(location.startswith(root) and location != root for root in roots):
        return None
    return (
        "A Delta table must lie inside a folder or object-store prefix the operator allows "
        "(DELTA_ALLOWED_ROOTS); ask an instance admin to add one."
    )


def uc_schema_problem(*, rules: OutboundRules, project_slug: str, full_name: str) -> str | None:
    """Why the project may not deliver to the Unity Catalog table ``full_name``, or None."""
    allowed = uc_schemas_parse(rules.uc_allowed_schemas)
    parts = [p.strip("`").lower() for p in full_name.split(".")]
    if len(parts) != 3:
        return None  # the name check reports it
    catalog, schema = parts[0], parts[1]
    for cat, sch in allowed.get(project_slug, []) + allowed.get("*", []):
        if cat == catalog and sch in ("*", schema):
            return None
    return (
        f"This project may not deliver to the schema {catalog}.{schema}: an instance admin allows "
        "schemas per project in UC_ALLOWED_SCHEMAS."
    )


# --- secrets -----------------------------------------------------------------------------------------


def credential_env_problem(name: str, *, rules: OutboundRules) -> str | None:
    """Why an LLM endpoint may not read its key from the variable ``name``, or None."""
    prefix = rules.secret_env_prefix
    if name.upper() in FORBIDDEN_ENV or not name.startswith(prefix) or name == prefix:
        return (
            f"Endpoint keys must be in variables whose name starts with {prefix} "
            f"(e.g. {prefix}OPENAI_KEY); other variables hold the application's own secrets."
        )
    return None


def _secret_name(name: str, prefix: str) -> bool:
    upper = name.upper()
    if upper.startswith("MLFLOW_") and upper not in STRIPPED_ENV:
        return False
    if upper in STRIPPED_ENV or upper.removesuffix("_FILE") in STRIPPED_ENV or upper.startswith(prefix):
        return True
    if upper.startswith(STRIPPED_ENV_PREFIXES):
        return True
    return any(word in upper for word in CREDENTIAL_WORDS)


def environ_without_secrets(
    base: dict[str, str] | None = None, *, secret_env_prefix: str = DEFAULT_SECRET_ENV_PREFIX
) -> dict[str, str]:
    """A copy of the environment for a process that runs model code: no database URL, secret key,
    tokens, Databricks or cloud credentials (model code is not trusted with the application's keys).
    ``secret_env_prefix``: the deployment's SECRET_ENV_PREFIX (endpoint keys), stripped too."""
    prefix = secret_env_prefix
    source = dict(os.environ if base is None else base)
    return {k: v for k, v in source.items() if not _secret_name(k, prefix)}
