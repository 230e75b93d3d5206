"""Ports (small interfaces) and their adapters: each foreign library or command lives in one module here."""
