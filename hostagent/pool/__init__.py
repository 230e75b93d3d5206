"""Pools of hosts: membership, the master's calls forwarded to members, and their wire."""
