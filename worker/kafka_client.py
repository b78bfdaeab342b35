"""How the worker's Kafka clients (frame consumer, dead-letter producer) authenticate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings; the password is left out of ``repr`` so it never reaches a log."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        uses_sasl = self.protocol.startswith("SASL_")
        if uses_sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(
                f"Kafka security protocol {self.protocol} needs a SASL mechanism, username and "
                "password"
            )

    def client_config(self) -> dict[str, str]:
        """The kafka-python keyword arguments, only those that are set."""
        config = {
            "security_protocol": self.protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        return {name: value for name, value in config.items() if value is not None}
