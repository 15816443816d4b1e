"""Simulated experiments driven through the real HTTP APIs (`splitstream simulate`, `make demo`).

``scenario`` holds the declarative type (definition, behaviour model, true effects); ``content``, ``pricing`` and
``campaign`` the scenarios; ``traffic`` the HTTP driving; ``simulation`` the waves of users with their progress
bar; ``readout`` what is printed at the end.
"""
