"""The devnet demo (``make demo`` / ``python -m oracle.demo``): the whole story with real daemons.

:mod:`actors` starts the operator nodes (one honest, one dishonest), the challenger and the dashboard;
:mod:`story` drives the dApp and narrates; :mod:`report` prints the summary table.
"""
