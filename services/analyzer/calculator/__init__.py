"""The stateless statistics calculator: ``/v1/stats/*`` runs the engine on sufficient statistics sent in the body."""
