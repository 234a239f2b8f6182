"""homevol: per-project shared home volumes, exported over NFS to that project's instances only."""

__version__ = "0.1.0"
