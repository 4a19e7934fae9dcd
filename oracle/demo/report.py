"""The demo's closing summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Summary:
    requests: int = 0
    finalized: int = 0
    frauds: int = 0
    corrupted: int = 0
    wrong_finalized: int = 0
    honest_unfinalized: int = 0
    slashed: int = 0
    rewarded: int = 0
    burned: int = 0
    honest_stake: int = 0
    honest_credits: int = 0
    cheater_stake: int = 0
    challenger_credits: int = 0
    minted: int = 0
    gas: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    game: Any = None  # oracle.demo.game_act.GameOutcome of the large model's dispute game
    shipped: list[Any] = field(default_factory=list)  # oracle.demo.models_act.ShippedRun, one per model


def eth(wei: int) -> str:
    return f"{wei / 1e18:.4f} ETH"


def print_summary(console: Console, s: Summary) -> None:
    table = Table(title="Demo summary", show_lines=False)
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("requests", str(s.requests)),
        ("results finalized", str(s.finalized)),
        ("wrong results posted by the dishonest operator", str(s.corrupted)),
        ("frauds proven on-chain", str(s.frauds)),
        ("wrong results that got finalized", str(s.wrong_finalized)),
        ("slashed / rewarded to challenger / burned", f"{eth(s.slashed)} / {eth(s.rewarded)} / {eth(s.burned)}"),
        ("honest operator: stake, fees earned", f"{eth(s.honest_stake)}, {eth(s.honest_credits)}"),
        ("dishonest operator: stake left", eth(s.cheater_stake)),
        ("challenger credits", eth(s.challenger_credits)),
        ("tokens minted by DigitMint", str(s.minted)),
    ]
    g = s.game
    if g is not None:
        rows += [
            ("dispute game: model size", f"{g.ops} ops, {g.macs / 1e6:.1f}M MACs"),
            ("dispute game: transactions, largest", f"{g.moves}, {g.max_gas:,} gas"),
            ("dispute game: operator slashed", "yes" if g.slashed else "NO"),
        ]
    if s.shipped:
        top = max(s.shipped, key=lambda r: r.registration_gas)
        rows.append(("largest model registration (one transaction)",
                     f"{top.registration_gas:,} gas ({top.name})"))
    for r in s.shipped:
        rows.append((f"model #{r.model_id} {r.name}",
                     f"0x{r.output.hex()} (expected 0x{r.expected.hex()}), {r.status.name.lower()}"))
    for label, value in rows:
        table.add_row(label, value)
    for step, used in s.gas.items():
        table.add_row(f"gas: {step}", f"{sum(used) // max(len(used), 1):,}")
    table.add_row("time taken", f"{s.seconds:.1f} s")
    console.print(table)
