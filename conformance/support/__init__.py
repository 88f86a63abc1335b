"""Helpers shared by the TAXII 2.1 conformance tests (profile loading, HTTP, STIX fixtures)."""
