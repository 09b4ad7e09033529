"""The room controller daemon: config, local rules, presence, outbox and the MQTT link."""

__version__ = "0.1.0"
