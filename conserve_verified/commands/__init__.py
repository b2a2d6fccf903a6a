"""Subcommands of ``conserve-verified`` (one module each, discovered by :mod:`..cli`)."""
