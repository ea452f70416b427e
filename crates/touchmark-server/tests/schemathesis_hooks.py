"""Hooks for the schemathesis run of tests/openapi.rs.

The OCSP responder (POST /ocsp) takes a DER OCSPRequest, `application/ocsp-request` (RFC 6960
Appendix C). Schemathesis has no serializer for that media type; its bodies are raw bytes, which
it sends as it sends `application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")
