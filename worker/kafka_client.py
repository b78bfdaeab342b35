"""What every Kafka client of rdqc shares: the brokers, how it authenticates, its client id.

The frame consumer (sources/kafka.py), the dead-letter producer (sinks/kafka_dead_letters.py)
and ``rdqc send`` take their common kafka-python keyword arguments from ``client_kwargs``; each
keeps its own options (acks, idempotence, timeouts, group) at its call site.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    # Only the type: the Kafka backends stay importable without pydantic-settings.
    from worker.settings_sections import KafkaSettings

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

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> KafkaSecurity:
        password = kafka.sasl_password
        return cls(
            protocol=kafka.security_protocol,
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_username=kafka.sasl_username,
            sasl_password=password.get_secret_value() if password else None,
            ssl_cafile=kafka.ssl_cafile,
            ssl_certfile=kafka.ssl_certfile,
            ssl_keyfile=kafka.ssl_keyfile,
        )


def client_kwargs(
    bootstrap_servers: str | list[str],
    security: KafkaSecurity,
    *,
    client_id: str | None = None,
) -> dict[str, object]:
    """The kafka-python keyword arguments a producer or consumer shares, only those that are set.

    Without ``client_id`` kafka-python names the client itself.
    """
    config: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "security_protocol": security.protocol,
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.sasl_username,
        "sasl_plain_password": security.sasl_password,
        "ssl_cafile": security.ssl_cafile,
        "ssl_certfile": security.ssl_certfile,
        "ssl_keyfile": security.ssl_keyfile,
    }
    return {name: value for name, value in config.items() if value is not None}
