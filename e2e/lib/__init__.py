"""Helpers shared by the e2e suites: running vios processes and the peers they talk to."""
