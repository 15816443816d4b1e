"""The ``splitstream`` command-line client: experiments, results and power, over the services' HTTP APIs only."""
