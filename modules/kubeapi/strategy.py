"""The registry strategy of every kind: what `store.py` calls around a create or update.

One entry point per step of k8s.io/apiserver's generic registry (decode with defaults,
PrepareForCreate / PrepareForUpdate, Validate / ValidateUpdate); each runs the generic
rules and those of the existing kinds (`objects.py`), then the kind's own: storage and
events in `kinds.py`, certificate signing requests in `certificates.py`. Pure functions
over JSON dicts; a refusal raises an `ApiError` and nothing is stored.
"""

from __future__ import annotations

from typing import Any

from modules.kubeapi import certificates, kinds, objects, schemas
from modules.kubeapi import fielderrors as fe
from modules.kubeapi.resources import ResourceType

JsonObj = dict[str, Any]


def default(rtype: ResourceType, obj: JsonObj) -> None:
    """Defaults a decoded body gets, on create and update alike; mutates `obj`."""
    if rtype.key == certificates.KEY:
        certificates.default(obj)
    elif rtype.schema is not None:
        pruned = schemas.prune(obj, rtype.schema)
        obj.clear()
        obj.update(pruned)
    else:
        kinds.default(rtype.key, obj)


def validate_create(rtype: ResourceType, name: str, obj: JsonObj) -> None:
    objects.validate(rtype, name, obj)
    _raise(rtype, name, _causes(rtype, obj, None, ""))


def prepare_create(rtype: ResourceType, obj: JsonObj) -> None:
    objects.prepare_create(rtype, obj)
    if rtype.key == certificates.KEY:
        certificates.prepare_create(obj)
    else:
        kinds.prepare_create(rtype.key, obj)


def prepare_update(rtype: ResourceType, new: JsonObj, old: JsonObj, *, subresource: str) -> JsonObj:
    """The object to store for an update of the object or of one of its subresources."""
    if rtype.key == certificates.KEY:
        # /approval takes metadata and conditions from the body, as /status does
        generic = "status" if subresource == "approval" else subresource
        new = objects.prepare_update(rtype, new, old, subresource=generic)
        return certificates.prepare_update(new, old, subresource=subresource)
    new = objects.prepare_update(rtype, new, old, subresource=subresource)
    kinds.prepare_update(rtype.key, new, old, subresource=subresource)
    return new


def validate_update(
    rtype: ResourceType, name: str, new: JsonObj, old: JsonObj, *, subresource: str
) -> None:
    objects.validate(rtype, name, new)
    _raise(rtype, name, _causes(rtype, new, old, subresource))


def _causes(
    rtype: ResourceType, obj: JsonObj, old: JsonObj | None, subresource: str
) -> list[fe.Cause]:
    if rtype.key == certificates.KEY:
        return certificates.validate(obj, old, subresource=subresource)
    if rtype.schema is not None:
        if old is None and rtype.has_status:  # dropped on create, before validation
            obj = {k: v for k, v in obj.items() if k != "status"}
        return schemas.validate(obj, rtype.schema, old)
    return kinds.validate(rtype.key, rtype.kind, obj, old)


def _raise(rtype: ResourceType, name: str, causes: list[fe.Cause]) -> None:
    fe.raise_if_any(rtype.kind, rtype.group, name, causes)
