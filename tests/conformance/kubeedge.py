"""Processes for the conformance suite: this project's cloudcore and edge, and KubeEdge's
cloudcore and edgecore, each in its own folder with its own ports, against one real
Kubernetes API server.

KubeEdge's configs are made from the binaries' own ``--defaultconfig`` with the changes a
test needs (addresses, ports, the token, the node name, modules a test machine lacks
turned off), so a newer KubeEdge brings its own defaults. What each side stored is read
from its sqlite file: edgecore's table ``meta(key, type, value)`` (keys
``<namespace>/<type>/<name>``), this project's edge through the same store code.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

WAIT = 60.0  # seconds: edgecore reconnects only after two heartbeats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = WAIT, what: str = "") -> Any:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`.
    Prints how long it took (``pytest -s`` shows it)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        got = check()
        if got:
            if what:
                print(f"{what}: {time.monotonic() - start:.1f} s")
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what or check}")
        time.sleep(0.2)


def join_token(core: Any) -> str:
    """The join token both cloudcores keep in Secret kubeedge/tokensecret."""
    secret = core.read_namespaced_secret("tokensecret", "kubeedge")
    return base64.b64decode(secret.data["tokendata"]).decode()


class Process:
    """A child process with its output in a file, stopped (or killed) at the end."""

    def __init__(self, argv: list[str], workdir: Path, name: str, env: dict[str, str]) -> None:
        self.argv, self.workdir, self.name, self.env = argv, workdir, name, env
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env)  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class OurCloudCore(Process):
    """This project's cloudcore (certserver, edgecontroller, cloudhub) on a kubeconfig."""

    def __init__(self, workdir: Path, kubeconfig: Path) -> None:
        self.hub_port, self.cert_port = free_port(), free_port()
        config = {
            "hive": {"admin": {"address": f"unix://{workdir}/admin.sock"}},
            "kube": {"mode": "kubeconfig", "kubeconfig": str(kubeconfig)},
            "modules": {
                "certserver": {"settings": {"address": "127.0.0.1", "port": self.cert_port,
                                            "advertise_addresses": ["127.0.0.1"]}},
                "edgecontroller": {"settings": {}},
                "cloudhub": {"settings": {"address": "127.0.0.1", "port": self.hub_port,
                                          "tls": True, "keepalive_timeout": 30}},
            },
        }  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "cloudcore.yaml"
        self.config.write_text(yaml.safe_dump(config))
        beehive = str(Path(sys.executable).with_name("beehive"))
        super().__init__([beehive, "run", str(self.config)], workdir, "beehive-cloudcore",
                         dict(os.environ))  # fmt: skip

    def debug(self, *args: str) -> str:
        beehive = str(Path(sys.executable).with_name("beehive"))
        done = subprocess.run([beehive, "debug", "-c", str(self.config), *args],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        return done.stdout

    def node_row(self, node: str) -> dict[str, Any]:
        import json

        rows = json.loads(self.debug("nodes", "--json") or "[]")
        return next((r for r in rows if r["node"] == node), {})

    def ready(self) -> bool:
        return _listening(self.hub_port) and _listening(self.cert_port)


class KubeEdgeCloudCore(Process):
    """KubeEdge's cloudcore from `binary`, its config from ``--defaultconfig``."""

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.hub_port, self.cert_port = free_port(), free_port()
        config = _default_config(binary)
        config["kubeAPIConfig"]["kubeConfig"] = str(kubeconfig)
        modules = config["modules"]
        hub = modules["cloudHub"]
        hub["advertiseAddress"] = ["127.0.0.1"]
        hub["nodeLimit"] = 1000
        hub["websocket"].update(address="127.0.0.1", port=self.hub_port, enable=True)
        hub["https"].update(address="127.0.0.1", port=self.cert_port, enable=True)
        hub["quic"]["enable"] = False
        hub["unixsocket"]["enable"] = False
        for key, name in (
            ("tlsCAFile", "rootCA.crt"),
            ("tlsCAKeyFile", "rootCA.key"),
            ("tlsCertFile", "server.crt"),
            ("tlsPrivateKeyFile", "server.key"),
        ):
            hub[key] = str(workdir / "certs" / name)  # fmt: skip
        for off in ("iptablesManager", "cloudStream", "router", "dynamicController",
                    "taskManager"):  # fmt: skip
            if off in modules:
                modules[off]["enable"] = False
        if "commonConfig" in config:
            config["commonConfig"]["monitorServer"] = {"bindAddress": f"127.0.0.1:{free_port()}"}
        self.config = workdir / "cloudcore.yaml"
        self.config.write_text(yaml.safe_dump(config))
        super().__init__([str(binary), "--config", str(self.config)], workdir,
                         "kubeedge-cloudcore", dict(os.environ))  # fmt: skip

    def ready(self) -> bool:
        return _listening(self.hub_port) and _listening(self.cert_port)


class EdgeCore(Process):
    """KubeEdge's edgecore for one node; edged (its kubelet) off unless `runtime` names a
    CRI socket."""

    def __init__(
        self, binary: Path, workdir: Path, *, node: str, token: str, hub_port: int,
        cert_port: int, heartbeat: int = 5, runtime: str = "", pause_image: str = "",
    ) -> None:  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.node, self.db = node, workdir / "edgecore.db"
        config = _default_config(binary)
        config["database"]["dataSource"] = str(self.db)
        modules = config["modules"]
        hub = modules["edgeHub"]
        hub.update(token=token, heartbeat=heartbeat, httpServer=f"https://127.0.0.1:{cert_port}")
        hub["tlsCaFile"] = str(workdir / "certs" / "rootCA.crt")
        hub["tlsCertFile"] = str(workdir / "certs" / "server.crt")
        hub["tlsPrivateKeyFile"] = str(workdir / "certs" / "server.key")
        hub["websocket"].update(server=f"127.0.0.1:{hub_port}", enable=True)
        hub["quic"]["enable"] = False
        for off in ("eventBus", "serviceBus", "edgeStream", "deviceTwin", "taskManager"):
            if off in modules:
                modules[off]["enable"] = False
        meta = modules["metaManager"]
        meta.setdefault("metaServer", {})["enable"] = False
        edged = modules["edged"]
        edged["hostnameOverride"] = node
        edged["enable"] = bool(runtime)
        if runtime:
            _edged_with_runtime(edged, workdir, runtime, pause_image)
        self.config = workdir / "edgecore.yaml"
        self.config.write_text(yaml.safe_dump(config))
        env = dict(os.environ, CHECK_EDGECORE_ENVIRONMENT="false")
        super().__init__([str(binary), "--config", str(self.config)], workdir, "edgecore", env)

    def mounts(self, *, pods_only: bool = True) -> list[str]:
        """Mount points edged made under this node's folder: its pods' volumes (and
        its root folder, which it mounts too, with `pods_only` False)."""
        with open("/proc/mounts", encoding="utf-8") as table:
            points = [line.split()[1] for line in table]
        under = str(self.workdir / "kubelet" / "pods") if pods_only else str(self.workdir)
        return [p for p in points if p.startswith(under + "/") or p == under]

    def unmount_leftovers(self) -> None:
        """Detach what edged left mounted (it was stopped with pods running)."""
        for point in sorted(self.mounts(pods_only=False), reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def stored(self, rtype: str) -> dict[str, dict[str, Any]]:
        """`<namespace>/<name>` -> object, for what edgecore stored of `rtype`."""
        import json

        if not self.db.exists():
            return {}
        with contextlib.closing(sqlite3.connect(self.db, timeout=5)) as db:
            try:
                rows = db.execute("SELECT key, value FROM meta WHERE type = ?", (rtype,))
                found = rows.fetchall()
            except sqlite3.OperationalError:  # not created yet
                return {}
        out = {}
        for key, value in found:
            namespace, _, name = key.split("/", 2)
            with contextlib.suppress(ValueError):
                out[f"{namespace}/{name.split('/')[-1]}"] = json.loads(value)
        return out


def _edged_with_runtime(edged: dict[str, Any], workdir: Path, runtime: str, pause: str) -> None:
    """edged on a CRI socket, leaving the host alone: cgroupfs, no iptables chains, no
    negative OOM scores (a container sandbox may not set them)."""
    edged.update(rootDirectory=str(workdir / "kubelet"), reportEvent=True)
    if pause:
        edged["podSandboxImage"] = pause
    edged["tailoredKubeletConfig"].update(
        cgroupDriver="cgroupfs", makeIPTablesUtilChains=False, failSwapOn=False,
        oomScoreAdj=0, containerRuntimeEndpoint=f"unix://{runtime}",
        imageServiceEndpoint=f"unix://{runtime}",
    )  # fmt: skip


def _default_config(binary: Path) -> dict[str, Any]:
    done = subprocess.run([str(binary), "--defaultconfig"], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    """Start each in turn; stop all (in reverse) at the end, showing their logs on failure."""
    started: list[Process] = []
    try:
        for process in processes:
            process.start()
            started.append(process)
        yield
    except BaseException:
        for process in started:
            sys.stderr.write(f"--- {process.name} ({process.log}) ---\n{process.tail()}\n")
        raise
    finally:
        for process in reversed(started):
            process.stop()


def edge_node(core: Any, name: str) -> None:
    """The Node an edgecore without edged needs (edged would register it)."""
    body: Any = {"metadata": {"name": name, "labels": {"node-role.kubernetes.io/edge": ""}}}
    core.create_node(body)
