"""A throwaway certificate authority and a server certificate for 127.0.0.1, as PEM files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  # the authority's certificate: what a client trusts
    cert: Path  # the server's certificate chain
    key: Path  # the server's private key

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only our authority, offering HTTP/2 (as gRPC clients do)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.set_alpn_protocols(["h2"])
        return context


def issue(folder: Path) -> TLSFiles:
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")
    authority.cert_pem.write_to_path(str(files.ca))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(files.cert), append=True)
    server.private_key_pem.write_to_path(str(files.key))
    return files
