"""TLS on pyOpenSSL for `tlslayer.TLSLayer`: the client side of the fleet's connections.

Why: Python's ssl module is linked to the system's OpenSSL (3.0 here), where a fleet
node's connection cost 3.9 ms of CPU on the client side: loading the node's certificate
and key from their PEM files (OpenSSL 3's decoders), then the handshake. pyOpenSSL runs
on the OpenSSL of the `cryptography` wheel (4.x), and each connection takes a
certificate and key parsed once (SSL_use_certificate, SSL_use_PrivateKey: a reference,
no copy and no parsing): 1.7 ms in all (`bench/handshake_bench.py`).

Input: a client context (`client_context`: the CA, TLS 1.2 minimum, the TLS 1.2 suites
given) and an identity's `Credentials` (parsed once), together a `Client`. Output: for
each connection, a `Connection` that a TLSLayer drives as it drives an `ssl.SSLObject`
(`Client.wrap`, a `tlslayer.Engine`): the same methods over OpenSSL's own memory BIOs,
raising the same `ssl` exceptions, with messages in ssl's form
(``[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...``).

The server's certificate is verified by OpenSSL during the handshake, against the CA
only, and its name as Python's ssl checks it (Modules/_ssl.c, _ssl_configure_hostname):
an IP address must be one of the certificate's IP SANs exactly (X509_VERIFY_PARAM_set1_ip);
a DNS name must match a DNS SAN per RFC 6125 (X509_VERIFY_PARAM_set1_host, a wildcard
only as a whole left-most label: X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), and goes out as
SNI. A mismatch fails the handshake before the client has sent its certificate or data.

pyOpenSSL has no API for a connection's verification parameters or for the groups a
context offers, and takes certificates and keys only as `cryptography` objects, which
it converts through DER at each call (its own parsed objects are deprecated there). So
the calls that need them reach the OpenSSL objects beneath pyOpenSSL's
(`Connection._ssl`, `Connection._from_ssl`, `Context._context`, `X509._x509`,
`PKey._pkey`) with `cryptography`'s bindings, which pyOpenSSL itself calls; all of them
are in this module.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.bindings.openssl import binding
from OpenSSL import SSL, crypto

_lib: Any = binding.Binding.lib
_ffi: Any = binding.Binding.ffi

# The groups a client offers: those of OpenSSL 3.0 (the default Python's ssl offers
# here), in its order, with a key share for X25519 only. OpenSSL 3.5 and later would
# add X25519MLKEM768 and keep the client's share of it for the connection's life: 10
# KiB more per idle connection, and cloudhub's OpenSSL 3.0 does not take it anyway.
GROUPS = "X25519:P-256:X448:P-521:P-384:ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192"


def openssl_version() -> str:
    """The OpenSSL beneath pyOpenSSL, e.g. ``OpenSSL 4.0.3 29 Sep 2026``."""
    return SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()


def client_context(*, ca_pem: bytes, ciphers: str) -> SSL.Context:
    """A client context: TLS 1.2 at least, `ciphers` for TLS 1.2 (TLS 1.3's suites are
    OpenSSL's, as in `ssl`), the server verified against the certificates of `ca_pem`
    only, and read and write buffers released while a connection is idle (as `ssl` does).

    Raises:
        ValueError: `ca_pem` holds no usable certificate, or no cipher of `ciphers` exists.
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    try:
        context.set_cipher_list(ciphers.encode("ascii"))
        store = context.get_cert_store()
        assert store is not None  # a fresh context's
        for cert in x509.load_pem_x509_certificates(ca_pem):
            store.add_cert(crypto.X509.from_cryptography(cert))
    except (SSL.Error, crypto.Error) as exc:
        raise ValueError(_describe(exc)) from None
    context.set_verify(SSL.VERIFY_PEER)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    if _lib.SSL_CTX_set1_curves_list(context._context, GROUPS.encode()) != 1:
        raise ValueError(f"OpenSSL refused the groups {GROUPS}")
    return context


class Credentials:
    """A certificate and its private key, parsed once, for any number of connections."""

    __slots__ = ("certificate", "key")

    def __init__(self, certificate: crypto.X509, key: crypto.PKey) -> None:
        self.certificate = certificate  # OpenSSL's X509, shared by the connections
        self.key = key  # and its EVP_PKEY

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> Credentials:
        """Parse a certificate (PEM, one certificate) and its key (PEM, unencrypted).

        Raises:
            ValueError: either is unparsable, or the PEM holds more than one certificate
                (an intermediate would not be presented).
        """
        if cert_pem.count(b"-----BEGIN CERTIFICATE-----") > 1:
            raise ValueError("the certificate file holds more than one certificate")
        try:
            certificate = crypto.load_certificate(crypto.FILETYPE_PEM, cert_pem)
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem)
        except crypto.Error as exc:
            raise ValueError(_describe(exc)) from None
        return cls(certificate, key)


class Client:
    """One identity's client TLS: a context (shared, e.g. by the nodes of one CA) and the
    credentials its connections present; a `tlslayer.Engine`."""

    __slots__ = ("context", "credentials")

    def __init__(self, context: SSL.Context, credentials: Credentials) -> None:
        """Check that the credentials can be presented.

        Raises:
            ValueError: the key is not the certificate's.
        """
        self.context = context  # CA, versions, suites: `client_context`
        self.credentials = credentials  # presented by every connection
        _present(SSL.Connection(context, None), credentials)  # checks that they match

    def wrap(
        self, *, server_side: bool, server_hostname: str | None
    ) -> tuple[Connection, _Incoming, _Outgoing]:
        """A connection to the server named `server_hostname` (an IP address or a DNS
        name, as in the URL), presenting the credentials, with its memory BIOs.

        Raises:
            ValueError: a server side was asked for, or the name is empty or unusable.
        """
        if server_side or not server_hostname:
            raise ValueError("a client connection needs the server's name")
        conn = SSL.Connection(self.context, None)
        conn.set_connect_state()
        _present(conn, self.credentials)
        _expect_name(conn, server_hostname)
        tls = Connection(conn, server_hostname)
        return tls, _Incoming(conn), _Outgoing(conn)


class Connection:
    """A pyOpenSSL connection as a TLSLayer drives an `ssl.SSLObject` (`tlslayer.TLSObject`)."""

    __slots__ = ("_conn", "_name")

    def __init__(self, conn: SSL.Connection, name: str) -> None:
        self._conn = conn  # over memory BIOs (`_Incoming`, `_Outgoing`)
        self._name = name  # the server's, as checked

    def do_handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.Error as exc:
            raise self._error(exc) from None

    def read(self, len: int = 1024) -> bytes:
        try:
            return self._conn.recv(len)
        except SSL.Error as exc:
            raise self._error(exc) from None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._conn.sendall(data)
        except SSL.Error as exc:
            raise self._error(exc) from None

    def unwrap(self) -> None:
        """Send close_notify (the peer's is not waited for: the socket closes next)."""
        try:
            self._conn.shutdown()
        except SSL.Error as exc:
            raise self._error(exc) from None

    def version(self) -> str:
        """The protocol agreed (after the handshake), named as `ssl` names it: ``TLSv1.3``."""
        return self._conn.get_protocol_version_name()

    def _error(self, exc: SSL.Error) -> ssl.SSLError:
        """`exc` as the `ssl` module raises it for the same failure."""
        for pyopenssl_type, ssl_type, text in _PLAIN_ERRORS:
            if isinstance(exc, pyopenssl_type):
                return ssl_type(_PLAIN_CODES[ssl_type], text)
        library, reason = _last(exc)
        code = _lib.SSL_get_verify_result(self._conn._ssl)
        if reason == "CERTIFICATE_VERIFY_FAILED" and code != _lib.X509_V_OK:
            why = self._verify_message(code)
            error: ssl.SSLError = ssl.SSLCertVerificationError(
                ssl.SSL_ERROR_SSL, f"[{library}: {reason}] certificate verify failed: {why}"
            )
            error.verify_code = code  # type: ignore[attr-defined]
            error.verify_message = why  # type: ignore[attr-defined]
        else:
            error = ssl.SSLError(ssl.SSL_ERROR_SSL, f"[{library}: {reason}] {_describe(exc)}")
        error.library, error.reason = library, reason
        return error

    def _verify_message(self, code: int) -> str:
        """Why verification failed, in ssl's words; for a name, also what the
        certificate names."""
        if code == _lib.X509_V_ERR_HOSTNAME_MISMATCH:
            return f"Hostname mismatch, certificate is not valid for {self._name!r}{self._names()}."
        if code == _lib.X509_V_ERR_IP_ADDRESS_MISMATCH:
            return (
                f"IP address mismatch, certificate is not valid for {self._name!r}{self._names()}."
            )
        return str(_ffi.string(_lib.X509_verify_cert_error_string(code)).decode())

    def _names(self) -> str:
        chain = self._conn.get_peer_cert_chain(as_cryptography=True)
        if not chain:
            return ""
        try:
            sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return " (it has no subjectAltName)"
        ips = [f"IP {ip}" for ip in sans.value.get_values_for_type(x509.IPAddress)]
        dns = [f"DNS {name}" for name in sans.value.get_values_for_type(x509.DNSName)]
        return f" (it names {', '.join(ips + dns) or 'no IP address or DNS name'})"


# Errors that are states rather than failures, in `ssl`'s types and words.
_PLAIN_ERRORS: tuple[tuple[type[SSL.Error], type[ssl.SSLError], str], ...] = (
    (SSL.WantReadError, ssl.SSLWantReadError, "The operation did not complete (read)"),
    (SSL.WantWriteError, ssl.SSLWantWriteError, "The operation did not complete (write)"),
    (SSL.ZeroReturnError, ssl.SSLZeroReturnError, "TLS/SSL connection has been closed (EOF)"),
    (SSL.SysCallError, ssl.SSLEOFError, "EOF occurred in violation of protocol"),
)
_PLAIN_CODES: dict[type[ssl.SSLError], int] = {
    ssl.SSLWantReadError: ssl.SSL_ERROR_WANT_READ,
    ssl.SSLWantWriteError: ssl.SSL_ERROR_WANT_WRITE,
    ssl.SSLZeroReturnError: ssl.SSL_ERROR_ZERO_RETURN,
    ssl.SSLEOFError: ssl.SSL_ERROR_EOF,
}


class _Incoming:
    """Bytes from the peer into the connection's read BIO (`tlslayer.Incoming`)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: SSL.Connection) -> None:
        self._conn = conn

    def write(self, data: bytes, /) -> int:
        return self._conn.bio_write(data) if data else 0  # pyOpenSSL refuses b""


class _Outgoing:
    """What the connection wrote for the peer (`tlslayer.Outgoing`)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: SSL.Connection) -> None:
        self._conn = conn

    @property
    def pending(self) -> int:
        return int(_lib.BIO_get_mem_data(self._conn._from_ssl, _ffi.NULL))

    def read(self, /) -> bytes:
        pending = self.pending
        return self._conn.bio_read(pending) if pending else b""


def _present(conn: SSL.Connection, credentials: Credentials) -> None:
    """Give `conn` the certificate and key (references; SSL_use_PrivateKey checks that
    the key is the certificate's).

    Raises:
        ValueError: it is not.
    """
    if _lib.SSL_use_certificate(conn._ssl, credentials.certificate._x509) != 1:
        raise ValueError(_describe(_pop_error()))
    if _lib.SSL_use_PrivateKey(conn._ssl, credentials.key._pkey) != 1:
        raise ValueError(f"the key does not match the certificate: {_describe(_pop_error())}")


def _expect_name(conn: SSL.Connection, name: str) -> None:
    """Have the handshake check the server's certificate for `name`, as `ssl` does
    (see the module docstring); a DNS name also goes out as SNI.

    Raises:
        ValueError: `name` is empty, starts with a dot, or OpenSSL refuses it.
    """
    param = _lib.SSL_get0_param(conn._ssl)
    _lib.X509_VERIFY_PARAM_set_hostflags(param, _lib.X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS)
    address = _ip_address(name)
    if address is not None:
        ok = _lib.X509_VERIFY_PARAM_set1_ip(param, address, len(address))
    else:
        encoded = name.encode("idna")  # as ssl.SSLContext._encode_hostname
        if encoded.startswith(b"."):
            raise ValueError(f"server name {name!r} starts with a dot")
        conn.set_tlsext_host_name(encoded)
        ok = _lib.X509_VERIFY_PARAM_set1_host(param, encoded, len(encoded))
    if ok != 1:
        raise ValueError(f"server name {name!r}: {_describe(_pop_error())}")


def _ip_address(name: str) -> bytes | None:
    """`name`'s address if it is an IP address as OpenSSL reads one (a2i_IPADDRESS: no
    IPv6 zone), else None."""
    if "%" in name:
        return None
    try:
        return ipaddress.ip_address(name).packed
    except ValueError:
        return None


def _pop_error() -> SSL.Error:
    """This thread's OpenSSL errors as pyOpenSSL raises them, the queue emptied."""
    entries = []
    while (code := _lib.ERR_get_error()) != 0:
        library, reason = _lib.ERR_lib_error_string(code), _lib.ERR_reason_error_string(code)
        entries.append((_text(library), "", _text(reason)))
    return SSL.Error(entries)


def _text(chars: Any) -> str:
    return "" if chars == _ffi.NULL else str(_ffi.string(chars).decode())


def _last(exc: Exception) -> tuple[str, str]:
    """The library and reason mnemonic of `exc`'s last error (OpenSSL's last), as `ssl`
    names them: ``SSL``, ``CERTIFICATE_VERIFY_FAILED``."""
    entries = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    if not entries:
        return "SSL", "UNKNOWN"
    library, reason = str(entries[-1][0]), str(entries[-1][2])
    return ("SSL" if library == "SSL routines" else library), reason.upper().replace(" ", "_")


def _describe(exc: Exception) -> str:
    """The reason of `exc`'s last error, in OpenSSL's words."""
    entries = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    return str(entries[-1][2]) if entries else str(exc)
