"""The HTML report of an experiment, served by the analyzer (see routes.py)."""
