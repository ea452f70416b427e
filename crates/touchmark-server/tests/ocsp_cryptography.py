"""An independent OCSP client: Python `cryptography` builds the requests, sends them to the
server by POST and GET (RFC 6960 Appendix A, RFC 5019 section 5), parses the answers and checks
them. Prints one JSON object of what it observed; the Rust test asserts on it.

argv: base URL, the server's TLS root (PEM), the issuing CA (PEM), the device certificate (PEM).
"""

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

base, tls_root, issuer_path, cert_path = sys.argv[1:5]
context = ssl.create_default_context(cafile=tls_root)
with open(issuer_path, "rb") as f:
    issuer = x509.load_pem_x509_certificate(f.read())
with open(cert_path, "rb") as f:
    cert = x509.load_pem_x509_certificate(f.read())


def send(method, der):
    """The HTTP status and body of one OCSP request, by POST or GET."""
    if method == "POST":
        request = urllib.request.Request(
            base + "/ocsp",
            data=der,
            method="POST",
            headers={"Content-Type": "application/ocsp-request"},
        )
    else:
        encoded = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
        request = urllib.request.Request(base + "/ocsp/" + encoded, method="GET")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def verify_signature(key, signature, data, algorithm):
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
        return True
    except InvalidSignature:
        return False


def observe(method, builder, nonce):
    """Sends the request `builder` makes and reports what the response says."""
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    status, content_type, body = send(method, der)
    response = ocsp.load_der_ocsp_response(body)
    seen = {
        "http": status,
        "content_type": content_type,
        "response_status": response.response_status.name,
    }
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return seen
    seen["cert_status"] = response.certificate_status.name
    seen["serial_matches"] = response.serial_number == cert.serial_number
    if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        seen["revocation_time"] = int(response.revocation_time_utc.timestamp())
        reason = response.revocation_reason
        seen["revocation_reason"] = reason.name if reason is not None else None
    # The delegated responder: its certificate in the response, issued by the CA for
    # id-kp-OCSPSigning, and the response's signature made with its key.
    responders = response.certificates
    seen["responder_certificates"] = len(responders)
    if responders:
        responder = responders[0]
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        seen["responder_ocsp_signing"] = ExtendedKeyUsageOID.OCSP_SIGNING in eku
        seen["responder_issuer_is_ca"] = responder.issuer == issuer.subject
        try:
            responder.verify_directly_issued_by(issuer)
            seen["responder_signed_by_ca"] = True
        except (ValueError, TypeError, InvalidSignature):
            seen["responder_signed_by_ca"] = False
        seen["signature_valid"] = verify_signature(
            responder.public_key(),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
        )
        seen["responder_id_matches"] = (
            response.responder_name == responder.subject
            if response.responder_name is not None
            else response.responder_key_hash
            == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
        )
    # The nonce, echoed when one was sent.
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    seen["nonce_echoed"] = nonce is not None and echoed == nonce
    seen["nonce_present"] = echoed is not None
    return seen


def for_cert():
    return ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())


def by_hash(name_hash, key_hash, serial):
    return ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash, key_hash, serial, hashes.SHA1()
    )


# The issuer hashes of a CertID (RFC 6960 section 4.1.1), from a request cryptography built.
probe = for_cert().build()
name_hash, key_hash = probe.issuer_name_hash, probe.issuer_key_hash

out = {}
for method in ("POST", "GET"):
    m = method.lower()
    out[f"{m}_nonce"] = observe(method, for_cert(), os.urandom(16))
    out[f"{m}_no_nonce"] = observe(method, for_cert(), None)
    # A serial this CA never issued: unknown.
    out[f"{m}_never_issued"] = observe(
        method, by_hash(name_hash, key_hash, 0x7FFF_FFFF_FFFF_FFFF_0123), None
    )
    # Issuer hashes that match no CA here: unauthorized.
    out[f"{m}_unknown_ca"] = observe(
        method, by_hash(b"\x01" * 20, b"\x02" * 20, cert.serial_number), None
    )
    # Garbage, empty, and oversized requests: malformedRequest.
    for name, body in (
        ("garbage", b"garbage"),
        ("truncated", probe.public_bytes(serialization.Encoding.DER)[:-3]),
        ("oversized", b"\x30" * 10_000),
    ):
        status, content_type, answer = send(method, body)
        out[f"{m}_{name}"] = {
            "http": status,
            "content_type": content_type,
            "response_status": ocsp.load_der_ocsp_response(answer).response_status.name,
        }
status, content_type, answer = send("POST", b"")
out["post_empty"] = {
    "http": status,
    "content_type": content_type,
    "response_status": ocsp.load_der_ocsp_response(answer).response_status.name,
}
print(json.dumps(out))
