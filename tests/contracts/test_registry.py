"""Model registry: immutable versions, retire, validation errors, EXACT program chunks."""

from __future__ import annotations

from eth_utils import keccak

from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import program_bytes
from tests.contracts.conftest import BOND, FEE, INPUT, System

ZERO = b"\x00" * 32


def spec(**kw: object) -> tuple[object, ...]:
    base = dict(onnx_hash=b"\x22" * 32, fee=FEE, bond=BOND, input_length=64, output_length=32,
                mode=Mode.ATTESTED, uri="https://models.example/m.onnx")
    base.update(kw)
    return ModelSpec(**base).as_tuple()  # type: ignore[arg-type]


def test_register_emits_and_reads_back(system: System) -> None:
    receipt = system.chain.ok(system.oracle.functions.registerModel(spec(), []), system.user)
    (ev,) = system.client.events_in(receipt, "ModelRegistered")
    mid = ev["modelId"]
    assert mid == system.exact_id + 1 == system.client.model_count()
    m = system.client.get_model(mid)
    assert (m.owner, m.fee, m.bond, m.input_length, m.output_length, m.mode, m.retired) == (
        system.user, FEE, BOND, 64, 32, Mode.ATTESTED, False)
    assert m.uri == "https://models.example/m.onnx" and m.onnx_hash == b"\x22" * 32
    assert ev["onnxHash"] == b"\x22" * 32 and ev["uri"] == m.uri
    assert ev["feeToken"] == "0x" + "00" * 20  # the fee is in ETH


def test_registration_errors(system: System) -> None:
    f = system.oracle.functions.registerModel
    system.chain.reverts(f(spec(fee=0, bond=0), []), system.user, "ZeroFee")
    err = system.chain.reverts(f(spec(bond=4 * FEE - 1), []), system.user, "BondTooLow")
    assert err.args_decoded == (4 * FEE - 1, 4 * FEE)
    system.chain.reverts(f(spec(input_length=0), []), system.user, "InvalidIOLength")
    system.chain.reverts(f(spec(output_length=40_000), []), system.user, "InvalidIOLength")
    system.chain.reverts(f(spec(onnx_hash=ZERO), []), system.user, "MissingModelData")
    system.chain.reverts(f(spec(uri=""), []), system.user, "MissingModelData")
    system.chain.reverts(f(spec(mode=Mode.EXACT), []), system.user, "ProgramModeMismatch")
    system.chain.reverts(f(spec(program_commitment=b"\x01" * 32), []), system.user, "ProgramModeMismatch")
    assert system.client.model_count() == system.exact_id  # nothing stored


def test_exact_model_program_chunks_checked_against_commitment(system: System) -> None:
    junk = bytes(range(256)) * 200  # 51,200 bytes -> 3 chunks
    chunks = system.client.write_program(system.user, junk)
    assert len(chunks) == 3
    # Chunks are code-as-data: reading them back gives the bytes (after the STOP byte).
    assert b"".join(bytes(system.w3.eth.get_code(c))[1:] for c in chunks) == junk
    f = system.oracle.functions.registerModel
    err = system.chain.reverts(f(spec(mode=Mode.EXACT, program_commitment=b"\x05" * 32), chunks), system.user,
                               "ProgramCommitmentMismatch")
    assert err.args_decoded[1] == keccak(junk)
    # Matching commitment, but not a program the verifier can run: refused at registration, because every
    # challenge of such a model would revert and its wrong results could never be proven.
    system.chain.reverts(f(spec(mode=Mode.EXACT, program_commitment=keccak(junk)), chunks), system.user,
                         "ProgramNotExecutable", gas=10_000_000)

    program = program_bytes("digits")
    real = system.client.write_program(system.user, program)
    exact = dict(mode=Mode.EXACT, program_commitment=keccak(program), input_length=64, output_length=1)
    err = system.chain.reverts(f(spec(**{**exact, "output_length": 2}), real), system.user,
                               "ProgramOutputLengthMismatch", gas=10_000_000)
    assert err.args_decoded == (2, 1)
    system.chain.reverts(f(spec(**{**exact, "input_length": 63}), real), system.user, "ProgramNotExecutable",
                         gas=10_000_000)
    receipt = system.chain.ok(f(spec(**exact), real), system.user, gas=10_000_000)
    mid = system.client.events_in(receipt, "ModelRegistered")[0]["modelId"]
    assert system.client.program_chunks(mid) == real
    assert system.client.get_model(mid).program_commitment == keccak(program)


def test_retire_only_by_owner_blocks_new_requests_not_settlement(system: System) -> None:
    receipt = system.chain.ok(system.oracle.functions.registerModel(spec(), []), system.user)
    mid = system.client.events_in(receipt, "ModelRegistered")[0]["modelId"]
    open_request = system.request(model_id=mid)
    system.chain.reverts(system.oracle.functions.retireModel(mid), system.operator, "NotModelOwner")
    system.chain.reverts(system.oracle.functions.retireModel(999), system.user, "UnknownModel")
    receipt = system.chain.ok(system.oracle.functions.retireModel(mid), system.user)
    assert system.client.events_in(receipt, "ModelRetired")[0]["modelId"] == mid
    assert system.client.get_model(mid).retired
    system.chain.reverts(system.oracle.functions.requestInference(mid, INPUT, 0), system.user, "ModelIsRetired",
                         value=FEE)
    system.submit(open_request)
    system.finalize(open_request)
    assert system.client.status_of(open_request).name == "FINALIZED"


def test_unknown_model_views_revert(system: System) -> None:
    from oracle.errors import ContractRevert

    for call in (lambda: system.client.get_model(77), lambda: system.client.program_chunks(77)):
        try:
            call()
        except ContractRevert as exc:
            assert exc.name == "UnknownModel"
        else:
            raise AssertionError("expected UnknownModel")


def test_request_validation_errors_store_nothing(system: System) -> None:
    f = system.oracle.functions.requestInference
    system.chain.reverts(f(999, INPUT, 0), system.user, "UnknownModel", value=FEE)
    err = system.chain.reverts(f(system.model_id, INPUT, 0), system.user, "IncorrectFee", value=FEE - 1)
    assert err.args_decoded == (FEE, FEE - 1)
    system.chain.reverts(f(system.model_id, INPUT, 0), system.user, "IncorrectFee", value=0)
    err = system.chain.reverts(f(system.model_id, INPUT[:63], 0), system.user, "InputLengthMismatch", value=FEE)
    assert err.args_decoded == (64, 63)
    system.chain.reverts(f(system.model_id, INPUT, 1_000_001), system.user, "CallbackGasTooHigh", value=FEE)
    assert system.client.requested_events(0, system.w3.eth.block_number) == []
    assert system.chain.balance(system.deployment.oracle) == sum(
        system.client.stake_of(a).staked for a in system.accounts)
