"""The ledger's rules as pure functions of (facts, event, now) returning decisions.

Nothing here reads a clock, a database or the network: every input is an argument.
"""
