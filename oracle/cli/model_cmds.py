"""``oracle model ...``: recompute program commitments, compile and convert models.

Anyone can check a registered ``EXACT`` model with ``oracle model commitment FILE``: it compiles the
ONNX file exactly as the registry did and prints the keccak256 to compare with the on-chain value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from oracle.cli.errors import OracleTyper
from oracle.errors import OracleError

app = OracleTyper(help="Integer-profile models: commitments, compilation, conversion.", no_args_is_help=True)

InputWidth = Annotated[int, typer.Option("--input-width", help="Input element width in bytes (1, 2, 4, 8).")]
OutputWidth = Annotated[
    int, typer.Option("--output-width", help="Output element width in bytes (1, 2, 4, 8).")
]


def _fail(exc: Exception) -> typer.Exit:  # convert's own handling; the others go through oracle.cli.errors
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


@app.command()
def commitment(
    onnx_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Integer-profile ONNX file.")
    ],
    input_width: InputWidth = 1,
    output_width: OutputWidth = 1,
) -> None:
    """Print the program commitment (keccak256 of the canonical program) and the program size."""
    from oracle.profile.compiler import commitment_of_file

    program_bytes, digest = commitment_of_file(onnx_file, input_width, output_width)
    typer.echo(f"commitment {digest}")
    typer.echo(f"program_size {len(program_bytes)}")


@app.command("compile")
def compile_cmd(
    onnx_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Integer-profile ONNX file.")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the program bytes.")],
    input_width: InputWidth = 1,
    output_width: OutputWidth = 1,
) -> None:
    """Compile an ONNX file into its canonical program bytes."""
    from oracle.profile.compiler import commitment_of_file

    program_bytes, digest = commitment_of_file(onnx_file, input_width, output_width)
    out.write_bytes(program_bytes)
    typer.echo(f"wrote {out} ({len(program_bytes)} bytes), commitment {digest}")


@app.command()
def convert(
    float_onnx: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Float classifier ONNX file.")
    ],
    dataset: Annotated[
        str,
        typer.Option(help="Bundled dataset to calibrate and score on: digits, breast_cancer, iris, wine."),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the integer ONNX model.")],
    input_width: InputWidth = 2,
    weight_width: Annotated[
        int,
        typer.Option(help="Weight width in bytes; 0 picks the narrowest that keeps calibration accuracy."),
    ] = 0,
    identity_input: Annotated[
        bool, typer.Option(help="Features already are integers: no input scaling.")
    ] = False,
) -> None:
    """Convert a float classifier (dense, linear, a CNN, or the encoder transformer of
    oracle/profile/transformer_float.py, whose pixels are 1-byte tokens) into an integer-profile model;
    prints the quantizer and accuracies."""
    from oracle.profile.cnn import convert_cnn, is_cnn
    from oracle.profile.converter import convert_onnx
    from oracle.profile.datasets import load_split
    from oracle.profile.quantizer import Quantizer
    from oracle.profile.transformer import convert_transformer
    from oracle.profile.transformer_float import is_transformer

    try:
        split = load_split(dataset)
        quantizer = Quantizer.identity(split.x_train.shape[1], input_width) if identity_input else None
        data = float_onnx.read_bytes()
        cnn = is_cnn(data)  # Conv/MaxPool/AveragePool: lowered to dense stages by oracle.profile.cnn
        def say(msg: str) -> None:
            typer.echo(f"[convert] {msg}", err=True)

        if is_transformer(data):  # LayerNormalization: the encoder classifier of oracle.profile.transformer
            model, quantizer, report = convert_transformer(data, split.x_train, split.y_train, split.x_test,
                                                           split.y_test, weight_width=weight_width or None,
                                                           progress=say)
        else:
            extra: dict[str, Any] = {"progress": say} if cnn else {}
            model, quantizer, report = (convert_cnn if cnn else convert_onnx)(
                data,
                split.x_train,
                split.y_train,
                split.x_test,
                split.y_test,
                input_width=input_width,
                quantizer=quantizer,
                weight_width=weight_width or None,
                **extra,
            )
        out.write_bytes(model.SerializeToString(deterministic=True))
    except (OracleError, OSError, ValueError) as exc:
        raise _fail(exc) from None
    typer.echo(
        json.dumps({"out": str(out), "quantizer": quantizer.to_dict(), "report": report.to_dict()}, indent=2)
    )


@app.command("convert-trees")
def convert_trees_cmd(
    model_file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="Fitted tree classifier: a pickle/joblib of a scikit-learn, XGBoost or LightGBM classifier "
            "(only load files you trust), an XGBoost saved model (.json/.ubj) or a LightGBM model file (.txt).",
        ),
    ],
    dataset: Annotated[
        str, typer.Option(help="Bundled dataset to calibrate and score on: credit, breast_cancer, wine, digits.")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the integer ONNX model.")],
    input_width: InputWidth = 2,
    leaf_width: Annotated[int, typer.Option(help="Bytes per integer leaf value (1, 2, 4).")] = 2,
) -> None:
    """Convert a tree ensemble into an integer-profile model; prints the quantizer and the accuracy report."""
    from oracle.profile.datasets import load_split
    from oracle.profile.program import commitment, encode
    from oracle.profile.trees import convert_trees, load_tree_model

    try:
        model = load_tree_model(model_file)
        split = load_split(dataset)
        conv = convert_trees(model, split.x_train, split.x_test, split.y_test, input_width=input_width,
                             leaf_width=leaf_width)
        out.write_bytes(conv.model.SerializeToString(deterministic=True))
    except (OracleError, OSError, ValueError) as exc:
        raise _fail(exc) from None
    program = encode(conv.program)
    typer.echo(json.dumps({
        "out": str(out),
        "input_width": input_width,
        "output_width": 1,
        "program_size": len(program),
        "commitment": "0x" + commitment(program).hex(),
        "quantizer": conv.quantizer.to_dict(),
        "report": conv.report.to_dict(),
    }, indent=2))
