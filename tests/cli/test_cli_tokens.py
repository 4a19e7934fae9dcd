"""`oracle chain register --fee-token` and `oracle chain quote` on a real anvil."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.cli import app
from oracle.profile.models import model_path
from tests.cli.test_cli_register import FEE, chain  # noqa: F401 - the fixture

__all__ = ["chain"]


def _invoke(chain, *args: str) -> object:  # noqa: F811
    client, dep, owner = chain
    return CliRunner().invoke(app, [*args, "--deployment", str(dep), "--rpc", client.w3.provider.endpoint_uri])


def test_register_with_a_fee_token_then_quote(chain) -> None:  # noqa: F811
    client, _, owner = chain
    art = artifacts.load("TestToken")
    token = deploy(client.w3, art.abi, art.bytecode, owner)
    onnx = model_path("digits")
    res = _invoke(chain, "chain", "register", str(onnx), "--uri", onnx.as_uri(), "--fee", str(FEE),
                  "--input-length", "64", "--output-length", "1", "--program", str(onnx.with_suffix(".program")),
                  "--fee-token", token, "--bond", "1", "--unlocked", owner)
    assert res.exit_code == 0, res.stderr
    model_id = json.loads(res.stdout)["model_id"]
    assert client.get_model(model_id).fee_token == token
    res = _invoke(chain, "chain", "quote", str(model_id))
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["fee"], out["fee_asset"], out["value_wei"]) == (FEE, token, 0) and "approve" in out["approve"]


def test_a_fee_token_that_is_not_an_address_is_refused_in_one_line(chain) -> None:  # noqa: F811
    client, _, owner = chain
    onnx = model_path("digits_float")
    res = _invoke(chain, "chain", "register", str(onnx), "--uri", onnx.as_uri(), "--fee", str(FEE),
                  "--input-length", "256", "--output-length", "40", "--fee-token", "usdc", "--unlocked", owner)
    assert res.exit_code == 2 and "--fee-token 'usdc' is not an address" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
