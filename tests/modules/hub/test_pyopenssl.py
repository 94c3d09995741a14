"""TLS on pyOpenSSL (`pyopenssl`) as a client that a `TLSLayer` drives: the server's
certificate checked as Python's ssl checks it (against the CA, its name against the SANs),
errors in ssl's types and words, the same versions and suites as `tls.client_context`,
and connections to our TLSLayer server on 127.0.0.1.

The first tests handshake over memory BIOs, without sockets, against a server of the
standard library; the last ones run on real sockets, each on its own loop with every
wait bounded by `WAIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from OpenSSL import SSL

from modules.certs import ca as ca_mod
from modules.certs import tls
from modules.hub import pyopenssl, tlslayer
from tests.modules.hub.test_tlslayer import Collect, Echo, until

pytestmark = pytest.mark.timeout(20)

WAIT = 5.0
HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)


class Identity:
    """A CA and a node certificate from it, as the fleet's nodes have them."""

    def __init__(self) -> None:
        self.ca = ca_mod.generate_ca(NOW)
        key = ca_mod.new_key()
        self.node = ca_mod.KeyPair(ca_mod.sign_node(self.ca, key.public_key(), "n1", days=1,
                                                    now=NOW), key)  # fmt: skip

    def client(self) -> pyopenssl.Client:
        context = pyopenssl.client_context(ca_pem=self.ca.cert_pem, ciphers=tls.TLS12_CIPHERS)
        credentials = pyopenssl.Credentials.from_pem(self.node.cert_pem, self.node.key_pem)
        return pyopenssl.Client(context, credentials)

    def server(
        self, *, ips: tuple[str, ...] = (HOST,), dns: tuple[str, ...] = (),
        ca: ca_mod.KeyPair | None = None,
    ) -> ssl.SSLContext:  # fmt: skip
        """cloudhub's context: a certificate from `ca` (ours by default) for `ips` and `dns`."""
        ca = ca or self.ca
        cert = ca_mod.generate_server_cert(ca, ips=list(ips), dns_names=list(dns), now=NOW)
        return tls.server_context(ca_pem=self.ca.cert_pem, cert=cert.cert_pem, key=cert.key_pem)


@pytest.fixture(scope="module")
def ident() -> Identity:
    return Identity()


def handshake(
    client: tlslayer.TLSObject, incoming: tlslayer.Incoming, outgoing: tlslayer.Outgoing,
    server_ctx: ssl.SSLContext,
) -> ssl.SSLObject:  # fmt: skip
    """Handshake `client` with a server of `server_ctx` in memory, and return the server's
    side; the client's error, if it fails, is raised."""
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done: set[str] = set()
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            try:
                if name not in done:
                    side.do_handshake()
                    done.add(name)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                if name == "client":
                    raise
                done.add("server")  # refused: the client gets its alert
        if outgoing.pending:
            s_in.write(outgoing.read())
        if s_out.pending:
            incoming.write(s_out.read())
        if done == {"client", "server"}:
            return server
    raise AssertionError(f"no end to the handshake: {done}")


def outcome(
    name: str, server_ctx: ssl.SSLContext, client: pyopenssl.Client | ssl.SSLContext
) -> str:
    """ "ok", or the verification's message, of a handshake with a server of `server_ctx`
    by our client or by the standard library's, connecting to `name`."""
    try:
        if isinstance(client, ssl.SSLContext):
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            handshake(client.wrap_bio(incoming, outgoing, server_hostname=name), incoming,
                      outgoing, server_ctx)  # fmt: skip
        else:
            handshake(*client.wrap(server_side=False, server_hostname=name), server_ctx)
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message)
    return "ok"


@pytest.mark.parametrize(
    ("name", "ips", "dns", "expected"),
    [
        pytest.param(HOST, (HOST,), (), "ok", id="the IP address named"),
        pytest.param(HOST, ("127.0.0.2",), ("cloud.example",), "IP address mismatch",
                     id="another IP address"),
        pytest.param(HOST, (), ("127.0.0.1",), "IP address mismatch",
                     id="the IP address as a DNS name only"),
        pytest.param("::1", ("::1",), (), "ok", id="an IPv6 address"),
        pytest.param("::1", ("0:0:0:0:0:0:0:1",), (), "ok", id="an IPv6 address written out"),
        pytest.param("cloud.example", (HOST,), ("cloud.example",), "ok", id="the DNS name named"),
        pytest.param("Cloud.Example", (), ("cloud.example",), "ok", id="a DNS name in other case"),
        pytest.param("cloud.example", (HOST,), ("other.example",), "Hostname mismatch",
                     id="another DNS name"),
        pytest.param("a.cloud.example", (), ("*.cloud.example",), "ok", id="a wildcard label"),
        pytest.param("a.b.cloud.example", (), ("*.cloud.example",), "Hostname mismatch",
                     id="a wildcard for one label only"),
        pytest.param("ab.cloud.example", (), ("a*.cloud.example",), "Hostname mismatch",
                     id="no partial wildcards"),
        pytest.param("cloud.example", (), ("*.example",), "Hostname mismatch",
                     id="no wildcard over a single label"),
        pytest.param("localhost", (HOST,), (), "Hostname mismatch", id="a DNS name, IP SANs only"),
    ],
)  # fmt: skip
def test_the_servers_name_is_checked_as_the_standard_library_checks_it(
    ident: Identity, name: str, ips: tuple[str, ...], dns: tuple[str, ...], expected: str
) -> None:
    server = ident.server(ips=ips, dns=dns)
    ours = outcome(name, server, ident.client())
    theirs = outcome(name, server, tls.client_context(ca_pem=ident.ca.cert_pem))
    assert ours.startswith(expected)
    assert theirs.startswith(ours.split(" (it names")[0].rstrip("."))


def test_a_name_mismatch_says_what_the_certificate_names(ident: Identity) -> None:
    server = ident.server(ips=("127.0.0.2",), dns=("cloud.example",))
    client, incoming, outgoing = ident.client().wrap(server_side=False, server_hostname=HOST)
    with pytest.raises(ssl.SSLCertVerificationError) as failed:
        handshake(client, incoming, outgoing, server)
    assert failed.value.verify_code == 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
    assert str(failed.value) == (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch,"
        " certificate is not valid for '127.0.0.1' (it names IP 127.0.0.2, DNS cloud.example)."
    )
    assert failed.value.library == "SSL" and failed.value.reason == "CERTIFICATE_VERIFY_FAILED"


def test_a_server_of_another_ca_fails_verification(ident: Identity) -> None:
    server = ident.server(ca=ca_mod.generate_ca(NOW))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(*ident.client().wrap(server_side=False, server_hostname=HOST), server)


def test_a_server_that_refuses_the_certificate_fails_with_its_alert(ident: Identity) -> None:
    other = Identity()  # its server trusts its own CA for clients, not ours
    client = pyopenssl.Client(
        pyopenssl.client_context(ca_pem=other.ca.cert_pem, ciphers=tls.TLS12_CIPHERS),
        pyopenssl.Credentials.from_pem(ident.node.cert_pem, ident.node.key_pem),
    )
    server = other.server()
    tls_object, incoming, outgoing = client.wrap(server_side=False, server_hostname=HOST)
    with pytest.raises(ssl.SSLError, match=r"^\[SSL: \w*ALERT\w*\] .*alert"):
        handshake(tls_object, incoming, outgoing, server)
        tls_object.write(b"anyone?")  # TLS 1.3: the alert comes after the client's Finished
        outgoing.read()
        tls_object.read()


def test_data_both_ways_then_close_notify(ident: Identity) -> None:
    client, incoming, outgoing = ident.client().wrap(server_side=False, server_hostname=HOST)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ident.server().wrap_bio(s_in, s_out, server_side=True)
    for _ in range(5):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(outgoing.read())
        incoming.write(s_out.read())
    client.write(b"x" * 100_000)  # several records
    s_in.write(outgoing.read())
    received = b""
    while len(received) < 100_000:
        received += server.read(65536)
    assert received == b"x" * 100_000
    server.write(b"back")
    incoming.write(s_out.read())
    assert client.read(100) == b"back"
    with pytest.raises(ssl.SSLWantReadError):
        client.read(100)
    client.unwrap()
    s_in.write(outgoing.read())
    assert server.read(100) == b""  # the close_notify
    server.unwrap()
    incoming.write(s_out.read())
    with pytest.raises(ssl.SSLZeroReturnError):
        client.read(100)


def test_the_suites_are_the_standard_librarys_clients_and_tls_1_2_takes_one(
    ident: Identity,
) -> None:
    ours = pyopenssl.client_context(ca_pem=ident.ca.cert_pem, ciphers=tls.TLS12_CIPHERS)
    theirs = tls.client_context(ca_pem=ident.ca.cert_pem)
    assert SSL.Connection(ours, None).get_cipher_list() == [c["name"] for c in theirs.get_ciphers()]
    tls12 = ident.server()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    server = handshake(*ident.client().wrap(server_side=False, server_hostname=HOST), tls12)
    cipher = server.cipher()
    assert server.version() == "TLSv1.2"
    assert cipher is not None and cipher[0] in tls.TLS12_CIPHERS.split(":")


def test_a_tls_1_1_server_is_refused(ident: Identity) -> None:
    with warnings.catch_warnings():  # TLS 1.1 is deprecated in ssl: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ident.server()
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
        willing = tls.client_context(ca_pem=ident.ca.cert_pem, cert=ident.node.cert_pem,
                                     key=ident.node.key_pem)  # fmt: skip
        willing.minimum_version = ssl.TLSVersion.TLSv1_1
        willing.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = handshake(willing.wrap_bio(incoming, outgoing, server_hostname=HOST), incoming,
                       outgoing, old)  # fmt: skip
    assert server.version() == "TLSv1.1"  # the server works, for a client that allows it
    with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"):
        handshake(*ident.client().wrap(server_side=False, server_hostname=HOST), old)


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(lambda i: (b"junk", i.node.key_pem), id="a certificate that is no PEM"),
        pytest.param(lambda i: (i.node.cert_pem, b"junk"), id="a key that is no PEM"),
        pytest.param(lambda i: (i.node.cert_pem + i.ca.cert_pem, i.node.key_pem),
                     id="a chain, not one certificate"),
    ],
)  # fmt: skip
def test_unusable_credentials_are_refused_when_parsed(
    ident: Identity, files: Callable[[Identity], tuple[bytes, bytes]]
) -> None:
    cert, key = files(ident)
    with pytest.raises(ValueError):
        pyopenssl.Credentials.from_pem(cert, key)


def test_a_key_that_is_not_the_certificates_is_refused(ident: Identity) -> None:
    context = pyopenssl.client_context(ca_pem=ident.ca.cert_pem, ciphers=tls.TLS12_CIPHERS)
    credentials = pyopenssl.Credentials.from_pem(ident.node.cert_pem, Identity().node.key_pem)
    with pytest.raises(ValueError, match="the key does not match the certificate"):
        pyopenssl.Client(context, credentials)


def test_a_ca_file_without_a_certificate_is_refused() -> None:
    with pytest.raises(ValueError):
        pyopenssl.client_context(ca_pem=b"not a CA", ciphers=tls.TLS12_CIPHERS)


# On sockets: our TLSLayer server (the standard library) and a TLSLayer client on pyOpenSSL.


class Recording:
    """A TLS object that says on which threads its handshake steps ran."""

    def __init__(self, inner: tlslayer.TLSObject) -> None:
        self.inner = inner
        self.threads: set[str] = set()

    def do_handshake(self) -> None:
        self.threads.add(threading.current_thread().name)
        self.inner.do_handshake()

    def read(self, len: int = 1024) -> bytes:
        return self.inner.read(len)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self.inner.write(data)

    def unwrap(self) -> object:
        return self.inner.unwrap()


class RecordingClient:
    """An Engine making `Recording` objects of a pyOpenSSL client's connections."""

    def __init__(self, client: pyopenssl.Client) -> None:
        self.client = client
        self.made: list[Recording] = []

    def wrap(
        self, *, server_side: bool, server_hostname: str | None
    ) -> tuple[tlslayer.TLSObject, tlslayer.Incoming, tlslayer.Outgoing]:
        inner, incoming, outgoing = self.client.wrap(
            server_side=server_side, server_hostname=server_hostname
        )
        self.made.append(Recording(inner))
        return self.made[-1], incoming, outgoing


@asynccontextmanager
async def echo_server(context: ssl.SSLContext) -> AsyncIterator[tuple[int, list[Echo]]]:
    loop = asyncio.get_running_loop()
    apps: list[Echo] = []

    def app() -> Echo:
        apps.append(Echo())
        return apps[-1]

    listener = await loop.create_server(
        lambda: tlslayer.TLSLayer(app, context, server_side=True, handshake_timeout=WAIT),
        HOST, 0,
    )  # fmt: skip
    try:
        yield listener.sockets[0].getsockname()[1], apps
    finally:
        listener.close()
        for echo in apps:
            if echo.transport is not None:
                echo.transport.abort()


@pytest.mark.integration
@pytest.mark.parametrize("threads", [False, True], ids=["handshake on the loop", "on workers"])
def test_a_layer_on_pyopenssl_carries_a_megabyte_each_way_to_our_server(
    ident: Identity, workers: tlslayer.HandshakeWorkers, threads: bool
) -> None:
    engine = RecordingClient(ident.client())

    async def main() -> None:
        async with echo_server(ident.server()) as (port, apps):
            app = Collect()
            layer = tlslayer.TLSLayer(
                lambda: app, engine, server_side=False, server_hostname=HOST,
                handshake_timeout=WAIT, workers=workers if threads else None,
            )  # fmt: skip
            await asyncio.get_running_loop().create_connection(lambda: layer, HOST, port)
            await asyncio.wait_for(layer.handshake_done, WAIT)
            assert app.transport is not None
            payload = bytes(range(256)) * 4096
            app.transport.write(payload)
            await until(lambda: len(app.received) >= len(payload), app.more)
            assert bytes(app.received) == payload
            assert apps[0].peer_cn == "system:node:n1"
            assert app.transport.get_extra_info("ssl_object") is engine.made[0]
            assert engine.made[0].inner.version() == "TLSv1.3"
            app.transport.close()
            assert await asyncio.wait_for(apps[0].lost, WAIT) is None  # a clean close

    asyncio.run(main())
    threads_used = engine.made[0].threads
    if threads:
        assert threads_used and all(t.startswith("beehive-tls-handshake") for t in threads_used)
    else:
        assert threads_used == {threading.current_thread().name}
