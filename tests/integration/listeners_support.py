"""Certificates for the listeners' TLS in tests (test_listeners.py, test_listeners_doc.py):
one issued by a throwaway trustme CA for 127.0.0.1 and localhost, written where a config's
cert_file and key_file name it."""

from __future__ import annotations

from pathlib import Path

import trustme


def tls_files(tmp_path: Path, ca: trustme.CA, name: str) -> dict[str, str]:
    """[http] or [http.admin] cert_file and key_file of a new certificate of `ca`."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return {"cert_file": str(cert), "key_file": str(key)}
