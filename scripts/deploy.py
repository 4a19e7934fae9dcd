"""Deploy the verifier and the oracle with ape, to anvil or any network given on the command line.

    ape run deploy                                   # local anvil started by ape-foundry
    ape run deploy --network ethereum:sepolia:node --account deployer --window 3600

On a local network the first test account deploys; elsewhere pass ``--account`` (an ape account alias).
Prints the addresses as JSON (the same shape as ``oracle.chain.deploy.Deployment``) and writes it to
``--out`` when given.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from oracle.chain.deploy import ZERO_ADDRESS, Deployment, DeployParams


@click.command(cls=ConnectedProviderCommand)
@click.option("--account", "alias", default=None, help="ape account alias (default: first test account)")
@click.option("--window", default=DeployParams.challenge_window, show_default=True, help="challenge window, s")
@click.option("--timeout", default=DeployParams.request_timeout, show_default=True, help="request timeout, s")
@click.option("--exclusive-period", default=DeployParams.exclusive_period, show_default=True,
              help="seconds a request is reserved for its assigned operator (0: no assignment)")
@click.option("--unbonding", default=DeployParams.unbonding_period, show_default=True, help="unbonding, s")
@click.option("--min-operator-stake", default=DeployParams.min_operator_stake, show_default=True,
              help="stake (wei) an operator needs to be listed for assignment")
@click.option("--max-assignment-weight", default=DeployParams.max_assignment_weight, show_default=True,
              help="free stake (wei) above which an operator draws no more assignment weight")
@click.option("--bond-ratio", default=DeployParams.min_bond_ratio, show_default=True)
@click.option("--max-callback-gas", default=DeployParams.max_callback_gas, show_default=True)
@click.option("--tx-gas-cap", default=DeployParams.tx_gas_cap, show_default=True,
              help="per-transaction gas cap every proof transaction must fit (EIP-7825)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write the deployment JSON here")
def cli(network, alias, window, timeout, exclusive_period, unbonding, min_operator_stake, max_assignment_weight,
        bond_ratio, max_callback_gas, tx_gas_cap, out):  # type: ignore[no-untyped-def]
    """Deploy IntegerVerifier + InferenceOracle."""
    sender = accounts.load(alias) if alias else accounts.test_accounts[0]
    params = DeployParams(challenge_window=window, request_timeout=timeout, unbonding_period=unbonding,
                          min_bond_ratio=bond_ratio, max_callback_gas=max_callback_gas, tx_gas_cap=tx_gas_cap,
                          dispute_game=False, exclusive_period=exclusive_period,
                          min_operator_stake=min_operator_stake, max_assignment_weight=max_assignment_weight)
    verifier = project.IntegerVerifier.deploy(sender=sender)
    # No dispute game here (see oracle.chain.deploy, which deploys one).
    oracle = project.InferenceOracle.deploy(*params.oracle_args(verifier.address, ZERO_ADDRESS), sender=sender)
    text = Deployment(chain.chain_id, oracle.address, verifier.address, chain.blocks.head.number, params).to_json()
    if out:
        out.write_text(text + "\n")
    click.echo(text)
