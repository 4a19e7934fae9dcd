"""The interactive dispute game's off-chain side (docs/protocol.md §6, "Dispute game (v2)")."""
