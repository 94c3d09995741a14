"""The resource catalogue: which kinds exist, where they live, and discovery documents.

Built-in kinds are listed here; CustomResourceDefinitions stored through the API add and
remove kinds at run time (`Catalogue.add_crd` / `remove_crd`, called by the store).
`http.py` reads `lookup` to route a URL and the `*_document` methods for the discovery
endpoints (/api, /apis, /api/v1, /apis/<group>/<version>) that the client and kubectl read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]
_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_NAME_FIELDS = frozenset({"metadata.name"})  # cluster-scoped kinds with their own conversion
# pkg/registry/core/event/strategy.go ToSelectableFields ("source" is source.component)
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)


@dataclass(frozen=True, slots=True)
class Subresource:
    """A subresource other than status, as discovery lists it."""

    name: str  # "token", "approval"
    verbs: tuple[str, ...]
    kind: str = ""  # the kind it takes and answers when not the parent's (TokenRequest)
    group: str = ""  # that kind's group and version, for discovery
    version: str = ""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One REST resource: a (group, version, plural) with its kind and rules."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    has_status: bool = False  # the /status subresource exists and guards status
    field_labels: frozenset[str] = _META_FIELDS  # field selectors the server accepts
    # False for kinds without a field label conversion of their own, which accept
    # metadata.name and metadata.namespace whatever their scope and refuse others with
    # runtime.DefaultMetaV1FieldSelectorConversion's message
    field_conversion: bool = True
    # a field label the store indexes: a list or watch whose fieldSelector requires one
    # value of it reads only those objects (kube-apiserver's watch cache indexes pods by
    # spec.nodeName, which every kubelet's and every edge's list of its pods selects by)
    indexed_field: str = ""
    returns_deleted: bool = False  # DELETE answers the object, not a Status
    name_rule: str = "subdomain"  # "subdomain", "label" (namespaces), "crd" or "path" (any)
    custom: bool = False  # defined by a CRD: no strategic merge patch
    # the CRD version's openAPIV3Schema, which objects are pruned to and checked against
    schema: JsonObj | None = field(default=None, compare=False)
    subresources: tuple[Subresource, ...] = ()  # served besides status (token, approval)
    create_on_update: bool = False  # PUT of a missing object creates it (events)
    api_version: str = field(init=False)  # "v1" or "group/version"
    key: str = field(init=False)  # storage key: one per (group, plural), whatever the version

    def serves(self, subresource: str) -> bool:
        """True when `subresource` ("status", "token", ...) exists under this resource."""
        if subresource == "status":
            return self.has_status
        return any(sub.name == subresource for sub in self.subresources)

    def __post_init__(self) -> None:
        api_version = f"{self.group}/{self.version}" if self.group else self.version
        object.__setattr__(self, "api_version", api_version)
        object.__setattr__(self, "key", f"{self.group}/{self.plural}")


def _core(plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, kind.lower(), **kw)


BUILTIN: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        has_status=True,
        name_rule="label",
        returns_deleted=True,
        field_labels=_NAME_FIELDS | {"status.phase"},
    ),
    _core(
        "pods",
        "Pod",
        True,
        short_names=("po",),
        has_status=True,
        returns_deleted=True,
        indexed_field="spec.nodeName",
        field_labels=_META_FIELDS
        | {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        },
    ),
    _core("configmaps", "ConfigMap", True, short_names=("cm",), field_conversion=False),
    _core("secrets", "Secret", True, field_labels=_META_FIELDS | {"type"}),
    _core(
        "nodes",
        "Node",
        False,
        short_names=("no",),
        has_status=True,
        field_labels=_NAME_FIELDS | {"spec.unschedulable"},
    ),
    _core(
        "serviceaccounts",
        "ServiceAccount",
        True,
        short_names=("sa",),
        returns_deleted=True,
        field_conversion=False,
        subresources=(
            Subresource("token", ("create",), "TokenRequest", "authentication.k8s.io", "v1"),
        ),
    ),
    _core(
        "persistentvolumes",
        "PersistentVolume",
        False,
        short_names=("pv",),
        has_status=True,
        returns_deleted=True,
        field_conversion=False,
    ),
    _core(
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        True,
        short_names=("pvc",),
        has_status=True,
        returns_deleted=True,
        field_conversion=False,
    ),
    _core(
        "events",
        "Event",
        True,
        short_names=("ev",),
        create_on_update=True,
        field_labels=_META_FIELDS | _EVENT_FIELDS,
    ),
    ResourceType(
        "coordination.k8s.io", "v1", "leases", "Lease", True, "lease", field_conversion=False
    ),
    ResourceType(
        "storage.k8s.io",
        "v1",
        "volumeattachments",
        "VolumeAttachment",
        False,
        "volumeattachment",
        has_status=True,
        returns_deleted=True,
        field_conversion=False,
    ),
    ResourceType(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        False,
        "certificatesigningrequest",
        short_names=("csr",),
        has_status=True,
        field_labels=_NAME_FIELDS | {"spec.signerName"},
        name_rule="path",  # "We don't care what you call your certificate requests."
        subresources=(Subresource("approval", ("get", "patch", "update")),),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        "customresourcedefinition",
        short_names=("crd", "crds"),
        has_status=True,
        name_rule="crd",
        returns_deleted=True,
        field_conversion=False,
    ),
)


def types_from_crd(crd: JsonObj) -> list[ResourceType]:
    """The served versions of a stored CRD, as resource types."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for ver in spec.get("versions", []):
        if not ver.get("served", True):
            continue
        out.append(
            ResourceType(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames", ())),
                has_status="status" in (ver.get("subresources") or {}),
                field_labels=_META_FIELDS if spec.get("scope") == "Namespaced" else _NAME_FIELDS,
                returns_deleted=True,
                custom=True,
                schema=(ver.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return out


class Catalogue:
    """Every resource type the server serves, indexed for routing and discovery."""

    def __init__(self) -> None:
        # (group, version, plural) -> type, for routing
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        # CRD name -> the types it added, to remove them again
        self._by_crd: dict[str, list[ResourceType]] = {}
        for rtype in BUILTIN:
            self._by_path[(rtype.group, rtype.version, rtype.plural)] = rtype

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_key(self, key: str) -> ResourceType | None:
        """Any served version of the resource stored under `key`."""
        for rtype in self._by_path.values():
            if rtype.key == key:
                return rtype
        return None

    def add_crd(self, crd: JsonObj) -> None:
        self.remove_crd(crd["metadata"]["name"])
        added = types_from_crd(crd)
        self._by_crd[crd["metadata"]["name"]] = added
        for rtype in added:
            self._by_path[(rtype.group, rtype.version, rtype.plural)] = rtype

    def types_of_crd(self, name: str) -> list[ResourceType]:
        return list(self._by_crd.get(name, []))

    def remove_crd(self, name: str) -> None:
        for rtype in self._by_crd.pop(name, []):
            self._by_path.pop((rtype.group, rtype.version, rtype.plural), None)

    # -- discovery ---------------------------------------------------------------

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for group, version, _ in self._by_path:
            versions = groups.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return groups

    def core_versions_document(self) -> JsonObj:
        """GET /api"""
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }

    def group_list_document(self) -> JsonObj:
        """GET /apis"""
        groups = [
            self.group_document(group, versions)
            for group, versions in sorted(self._group_versions().items())
            if group
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def group_document(self, group: str, versions: list[str] | None = None) -> JsonObj:
        """GET /apis/<group>"""
        versions = versions or self._group_versions().get(group, [])
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0] if entries else {},
        }

    def has_group(self, group: str) -> bool:
        return group in self._group_versions()

    def resource_list_document(self, group: str, version: str) -> JsonObj | None:
        """GET /api/v1 or /apis/<group>/<version>; None when not served."""
        found = [t for (g, v, _), t in self._by_path.items() if g == group and v == version]
        if not found:
            return None
        resources: list[JsonObj] = []
        for rtype in sorted(found, key=lambda t: t.plural):
            resources.append(_resource_entry(rtype))
            if rtype.has_status:
                resources.append(_sub_entry(rtype, Subresource("status", tuple(STATUS_VERBS))))
            resources += [_sub_entry(rtype, sub) for sub in rtype.subresources]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": found[0].api_version,
            "resources": resources,
        }


def _resource_entry(rtype: ResourceType) -> JsonObj:
    entry: JsonObj = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": VERBS,
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    return entry


def _sub_entry(rtype: ResourceType, sub: Subresource) -> JsonObj:
    entry: JsonObj = {
        "name": f"{rtype.plural}/{sub.name}",
        "singularName": "",
        "namespaced": rtype.namespaced,
    }
    if sub.kind:
        entry.update(group=sub.group, version=sub.version)
    entry.update(kind=sub.kind or rtype.kind, verbs=list(sub.verbs))
    return entry
