"""The tracker: consumes the room controllers' events, keeps the document ledger and its
audit chain, and decides what a badge and a folder's movement mean.

Layers (data flows one way): ``domain`` (pure rules), ``store`` (SQLAlchemy models,
migrations, the audit chain), ``service`` (one transaction per change, used by the
ingest and the command line), ``ingest`` (MQTT), ``bootstrap`` (wires them).
"""
