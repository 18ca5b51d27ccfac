"""The installer: the resource layer of DESIGN.md, run as root on each server from the .bin.

Preflight (`dragonball.installer.preflight`) comes first: it probes the host, checks
it against the release and the role, and changes nothing. Where things go on a server is
the floor's (`dragonball.shared.paths`).
"""
