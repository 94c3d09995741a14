"""``beehive token -c CONFIG``: print the current join token, as ``keadm gettoken``.

Input: a cloudcore config (its ``kube:`` section and the ``certserver`` module's
namespace). Output: the token in Secret ``<namespace>/tokensecret`` on stdout. With
the embedded API server, the token is read through the kubeconfig the running
cloudcore wrote (``kube.kubeconfig``), so cloudcore must be running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from beehive import errors
from beehive.config import Config
from modules.certs.settings import CertSettings
from modules.certs.store import SecretStore
from modules.certs.token import read_token
from modules.kube.connection import KubeConnection, open_kube
from modules.kube.settings import KubeSettings


def register(sub: Any, load: Callable[[str], Config]) -> None:
    """Add ``token`` to the ``beehive`` command; `load` reads a config file."""
    p = sub.add_parser("token", help="print the current join token for edges (keadm gettoken)")
    p.add_argument("-c", "--config", required=True, help="cloudcore's YAML config")
    p.set_defaults(func=lambda args: _token(args, load))


def _token(args: argparse.Namespace, load: Callable[[str], Config]) -> int:
    """Raises: BeehiveError: no kube section, no API, or no token yet."""
    cfg = load(args.config)
    if "kube" not in cfg.given:
        raise errors.BeehiveError(f"{args.config}: no kube: section, so no token Secret")
    settings: KubeSettings = cfg.sections["kube"]
    namespace = _namespace(cfg)
    try:
        found = _read(settings, namespace)
    except (OSError, client.ApiException) as exc:
        raise errors.BeehiveError(f"cannot read the token: {_reason(exc)}") from None
    if found is None:
        raise errors.BeehiveError(
            f"no token in Secret {namespace}/tokensecret yet: is cloudcore (certserver) running?"
        )
    print(found, file=sys.stdout)
    return 0


def _namespace(cfg: Config) -> str:
    for module in cfg.modules:
        if module.name == "certserver" and isinstance(module.settings, CertSettings):
            return module.settings.namespace
    return CertSettings().namespace


def _read(settings: KubeSettings, namespace: str) -> str | None:
    if settings.mode == "embedded":
        if not settings.kubeconfig:
            raise FileNotFoundError("the embedded API writes no kubeconfig (set kube.kubeconfig)")
        path = Path(settings.kubeconfig)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: is cloudcore running?")
        return _from(KubeConnection(path, "", settings), namespace)
    with open_kube(settings) as kube:
        return _from(kube, namespace)


def _from(kube: KubeConnection, namespace: str) -> str | None:
    with kube.api_client(retries=0) as api:
        return read_token(SecretStore(client.CoreV1Api(api), namespace))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, client.ApiException):
        return f"Kubernetes API: {exc.status} {exc.reason}"
    return str(exc) or type(exc).__name__
