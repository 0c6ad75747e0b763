"""Every setting of the gateway simulator, read from the environment here only.

The API key has no default: a simulator without one refuses to start, like every service here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from servicekit.config import ConfigError, env_float, env_int, env_secret, env_str

from .decisions import SIMULATION_MODES
from .faults import Faults, InvalidFaults

MIN_API_KEY_LENGTH = 16

# Fault settings at start: GATEWAY_FAULT_<NAME> for each field of `Faults`.
FAULT_VARIABLES = {
    "error_every_n": "GATEWAY_FAULT_ERROR_EVERY_N",
    "error_rate": "GATEWAY_FAULT_ERROR_RATE",
    "error_status": "GATEWAY_FAULT_ERROR_STATUS",
    "slow_every_n": "GATEWAY_FAULT_SLOW_EVERY_N",
    "slow_seconds": "GATEWAY_FAULT_SLOW_SECONDS",
    "lose_answer_every_n": "GATEWAY_FAULT_LOSE_ANSWER_EVERY_N",
}


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    ledger_path: Path
    api_key: str
    mode: str
    success_rate: float
    rule_max_amount_cents: int
    faults: Faults
    log_level: str


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    mode = (env_str("PAYMENT_SIMULATION_MODE", "random", environ=environ) or "random").lower()
    if mode not in SIMULATION_MODES:
        raise ConfigError(f"PAYMENT_SIMULATION_MODE must be one of {', '.join(SIMULATION_MODES)}, got {mode!r}")
    raw_faults = {
        name: value for name, variable in FAULT_VARIABLES.items() if (value := env_str(variable, environ=environ))
    }
    try:
        faults = Faults.from_mapping(raw_faults)
    except InvalidFaults as exc:
        raise ConfigError("; ".join(f"{FAULT_VARIABLES[name]} {why}" for name, why in exc.errors.items())) from None
    api_key = env_secret("PAYMENT_GATEWAY_API_KEY", environ=environ)
    if len(api_key) < MIN_API_KEY_LENGTH:
        raise ConfigError(
            f"PAYMENT_GATEWAY_API_KEY must be at least {MIN_API_KEY_LENGTH} characters (`make env` makes one)"
        )
    return Settings(
        host=env_str("GATEWAY_HOST", "127.0.0.1", environ=environ) or "127.0.0.1",
        port=env_int("GATEWAY_PORT", 3003, minimum=0, maximum=65535, environ=environ),
        ledger_path=Path(env_str("GATEWAY_LEDGER_PATH", "var/gateway-ledger.db", environ=environ) or ""),
        api_key=api_key,
        mode=mode,
        success_rate=env_float("PAYMENT_SUCCESS_RATE", 0.7, minimum=0.0, maximum=1.0, environ=environ),
        rule_max_amount_cents=env_int(
            "PAYMENT_RULE_MAX_AMOUNT_CENTS", 1_000_000, minimum=0, maximum=10**12, environ=environ
        ),
        faults=faults,
        log_level=(env_str("LOG_LEVEL", "INFO", environ=environ) or "INFO").upper(),
    )
