"""Operator node settings (pydantic-settings: the only place configuration enters the worker).

Sources, highest priority first: keyword arguments, environment variables (prefix ``ORACLE_``, e.g.
``ORACLE_RPC_URLS='["http://127.0.0.1:8545"]'``), then an optional TOML / YAML / JSON config file
(``ORACLE_CONFIG`` or ``--config``). The signing key never comes from the config file: it is either an
encrypted keystore (``keystore_path`` + the password in the environment variable named by
``keystore_password_env``) or ``ORACLE_PRIVATE_KEY`` in the environment. A key or password in the file is
refused with an error, and the key is held as a ``SecretStr`` so it is never printed or logged.
"""

from __future__ import annotations

import difflib
import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import tomllib
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from oracle.errors import ConfigError

#: Keys that must never appear in a config file (secrets come from the environment or a keystore).
FORBIDDEN_FILE_KEYS = frozenset({"private_key", "key", "password", "keystore_password", "mnemonic", "secret"})

#: ``ORACLE_*`` environment variables that are not settings fields but are read elsewhere (CLI, tests, tools).
OTHER_ENV = frozenset({"ORACLE_CONFIG", "ORACLE_KEYSTORE_PASSWORD", "ORACLE_RPC_URL", "ORACLE_CHALLENGER_PRIVATE_KEY",
                       "ORACLE_TRY_PRIVATE_KEY", "ORACLE_ANVIL", "ORACLE_SOLC", "ORACLE_DEBUG"})
#: Prefixes of ``ORACLE_*`` variables owned by the test and benchmark harnesses.
OTHER_ENV_PREFIXES = ("ORACLE_SOAK_", "ORACLE_FUZZ_", "ORACLE_API_FUZZ_", "ORACLE_ARTIFACT")

_file_values: ContextVar[dict[str, Any] | None] = ContextVar("_file_values", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """Values read from the config file by :meth:`NodeSettings.load` (lowest priority)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _file_values.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in (_file_values.get() or {}).items() if k in self.settings_cls.model_fields}


class NodeSettings(BaseSettings):
    """Everything an operator node needs. Every field has an ``ORACLE_<NAME>`` environment variable."""

    model_config = SettingsConfigDict(env_prefix="ORACLE_", extra="ignore", validate_default=True)

    # --- chain
    rpc_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8545"],
                                description="JSON-RPC endpoints; the first healthy one is used, the others "
                                            "are fallbacks.")
    deployment_file: Path | None = Field(None, description="Deployment JSON written by `oracle deploy`.")
    oracle_address: str | None = Field(None, description="InferenceOracle address (instead of a deployment file).")
    start_block: int | None = Field(None, description="First block to scan when there is no cursor yet "
                                                      "(default: the deployment block, else the head).")
    confirmations: int = Field(0, ge=0, description="Blocks to trail the head by (0 on a devnet, 6+ in prod).")
    poll_interval: float = Field(0.5, gt=0, description="Seconds between polls when idle.")
    block_range: int = Field(500, ge=1, description="Largest block range per eth_getLogs call.")
    rpc_timeout: float = Field(10.0, gt=0, description="Seconds before an RPC call is abandoned.")

    # --- key (never from the file)
    keystore_path: Path | None = Field(None, description="Encrypted JSON keystore (geth/eth-account format).")
    keystore_password_env: str = Field("ORACLE_KEYSTORE_PASSWORD",
                                       description="Name of the environment variable holding the keystore "
                                                   "password.")
    private_key: SecretStr | None = Field(None, description="Hex private key; environment only (devnets).")

    # --- storage and models
    db_path: Path = Field(Path("oracle-node.sqlite3"), description="SQLite database (jobs, cursor, nonces).")
    model_dir: Path = Field(Path("model-cache"), description="Content-addressed model cache (<keccak>.onnx).")
    model_mirrors: list[str] = Field(default_factory=list,
                                     description="Base URLs of other nodes' APIs to fetch /models/<hash> from.")
    max_model_bytes: int = Field(64 * 1024 * 1024, gt=0, description="Largest model file accepted.")
    max_tensor_bytes: int = Field(16 * 1024 * 1024, gt=0,
                                  description="Largest declared input/output/initializer tensor accepted.")
    fetch_timeout: float = Field(30.0, gt=0, description="Seconds to download a model file.")
    model_ids: list[int] | None = Field(None, description="Model ids to serve (default: all).")

    # --- risk (what the node is willing to lock and serve)
    max_bond_wei: int | None = Field(10**18, ge=0,
                                     description="Largest bond (wei) the node locks for one request; requests "
                                                 "for models with a larger bond are skipped ('none': no limit).")
    deny_model_ids: list[int] = Field(default_factory=list,
                                      description="Model ids never to serve, whatever model_ids says.")

    # --- inference
    inference_timeout: float = Field(10.0, gt=0, description="Wall-time budget of one input (s), for models "
                                                              "not in model_timeouts.")
    model_timeouts: dict[int, float] = Field(default_factory=dict,
                                             description="Per-model wall-time budget of one input (s), e.g. "
                                                         "{7: 30.0} for a model known to be slow.")
    park_after_timeouts: int = Field(3, ge=1, description="Inputs in a row past their budget that park a model "
                                                          "(until `oracle node unpark`).")
    inference_lanes: int = Field(2, ge=1, le=32, description="Inference child processes running at once; a "
                                                             "model uses at most one.")
    inference_slice: float = Field(1.0, gt=0, description="Seconds of work a lane gets per model turn (the "
                                                          "chunk is sized from the model's measured speed).")
    inference_memory_mb: int = Field(2048, ge=256, description="Address-space limit of each inference child.")
    execute_batch: int = Field(256, ge=1, description="Most jobs run per turn of one model in a lane.")
    max_attempts: int = Field(3, ge=1, description="Tries per job before it is marked failed.")

    # --- transactions
    max_fee_gwei: float = Field(500.0, gt=0, description="Cap on maxFeePerGas.")
    priority_fee_gwei: float = Field(1.0, ge=0, description="Default maxPriorityFeePerGas.")
    fee_bump_percent: int = Field(25, ge=11, description="Fee increase of a replacement transaction (>= 11%).")
    stuck_after: float = Field(30.0, gt=0, description="Seconds without a receipt before replacing a tx.")
    min_time_left: int = Field(30, ge=0, description="Skip a request with fewer seconds than this before its "
                                                     "deadline.")
    batch_size: int = Field(50, ge=1, le=500, description="Results (or finalizations) per transaction.")
    auto_finalize: bool = Field(True, description="Finalize own results after the challenge window.")
    defend_games: bool = Field(True, description="Play every dispute game opened against our claims (and collect "
                               "the bonds won).")

    # --- operator API
    api_host: str = Field("127.0.0.1", description="Operator API bind address.")
    api_port: int = Field(8600, ge=0, le=65535, description="Operator API port (0: do not serve).")
    admin_key: SecretStr | None = Field(None, description="API key for /admin routes (header X-API-Key); "
                                                          "admin routes are disabled without one.")
    max_body_bytes: int = Field(64 * 1024, gt=0, description="Largest HTTP request body accepted.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    @field_validator("rpc_urls")
    @classmethod
    def _need_rpc(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one RPC url is needed (ORACLE_RPC_URLS)")
        return v

    @field_validator("max_bond_wei", mode="before")
    @classmethod
    def _no_bond_limit(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("", "none", "null", "unlimited"):
            return None  # the environment and TOML have no null: ORACLE_MAX_BOND_WEI=none lifts the limit
        return v

    @field_validator("admin_key")
    @classmethod
    def _strong_admin_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("admin_key must be at least 16 characters (generate one: openssl rand -hex 24)")
        return v

    @model_validator(mode="after")
    def _need_target(self) -> NodeSettings:
        if self.deployment_file is None and self.oracle_address is None:
            raise ValueError("set deployment_file (ORACLE_DEPLOYMENT_FILE) or oracle_address "
                             "(ORACLE_ORACLE_ADDRESS)")
        return self

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> NodeSettings:
        """Builds settings from ``overrides``, the environment and ``config_file`` (or ``ORACLE_CONFIG``)."""
        path = config_file or (Path(os.environ["ORACLE_CONFIG"]) if os.environ.get("ORACLE_CONFIG") else None)
        values = read_config_file(path) if path else {}
        fields = sorted(cls.model_fields)
        unknown = [k for k in values if k not in cls.model_fields]
        if unknown:
            raise ConfigError(f"config file {path}: " + "; ".join(_unknown(k, fields, "") for k in sorted(unknown)))
        password_env = str(overrides.get("keystore_password_env") or values.get("keystore_password_env")
                           or os.environ.get("ORACLE_KEYSTORE_PASSWORD_ENV") or "ORACLE_KEYSTORE_PASSWORD")
        env_unknown = sorted(
            k for k in os.environ
            if k.startswith("ORACLE_") and k.removeprefix("ORACLE_").lower() not in cls.model_fields
            and k not in OTHER_ENV and k != password_env and not k.startswith(OTHER_ENV_PREFIXES))
        if env_unknown:
            raise ConfigError("; ".join(_unknown(k, fields, "ORACLE_") for k in env_unknown)
                              + " (unset it; every setting is ORACLE_<NAME>, see docs/operator-guide.md)")
        token = _file_values.set(values)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(f"invalid node settings: {describe_validation_error(exc)}") from None
        except ValueError as exc:
            raise ConfigError(f"invalid node settings: {exc}") from None
        finally:
            _file_values.reset(token)

    def resolve_oracle_address(self) -> str:
        if self.oracle_address:
            return self.oracle_address
        from oracle.chain.deploy import Deployment

        assert self.deployment_file is not None
        if not self.deployment_file.exists():
            raise ConfigError(f"deployment file {self.deployment_file} does not exist; run `oracle chain deploy "
                              f"--out {self.deployment_file}` first, or fix deployment_file (ORACLE_DEPLOYMENT_FILE) "
                              "or set ORACLE_ORACLE_ADDRESS")
        try:
            return Deployment.load(self.deployment_file).oracle
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.deployment_file} is not a deployment file written by `oracle chain deploy` "
                              f"({type(exc).__name__}); fix deployment_file (ORACLE_DEPLOYMENT_FILE)") from None

    def default_start_block(self) -> int | None:
        if self.start_block is not None:
            return self.start_block
        if self.deployment_file is not None and self.deployment_file.exists():
            from oracle.chain.deploy import Deployment

            return Deployment.load(self.deployment_file).block
        return None


def _unknown(key: str, fields: list[str], prefix: str) -> str:
    name = key.removeprefix(prefix).lower() if prefix else key
    near = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    what = f"unknown setting {key}" if prefix else f"unknown key {key!r}"
    if not near:
        return what
    return what + (f": did you mean {prefix}{near[0].upper()}?" if prefix else f": did you mean {near[0]!r}?")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per invalid field, naming its environment variable, never echoing the value given.

    pydantic's own text includes ``input_value=...``: for a key or the admin key that would print the secret.
    """
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = f"{loc} (ORACLE_{str(err['loc'][0]).upper()})" if err["loc"] else "settings"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def read_config_file(path: Path) -> dict[str, Any]:
    """Reads a TOML, YAML or JSON config file; refuses secrets in it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path} must end in .toml, .yaml, .yml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse error, reported with the file name
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a table/mapping at the top level")
    secrets = sorted(k for k in data if str(k).lower() in FORBIDDEN_FILE_KEYS)
    if secrets:
        raise ConfigError(
            f"config file {path} contains {', '.join(secrets)}: keys are never read from a config file. "
            "Remove it and use an encrypted keystore (keystore_path + ORACLE_KEYSTORE_PASSWORD) or the "
            "ORACLE_PRIVATE_KEY environment variable."
        )
    return data


def load_account(settings: NodeSettings) -> Any:
    """The operator's ``LocalAccount`` from the keystore or ``ORACLE_PRIVATE_KEY`` (never logged)."""
    from eth_account import Account

    if settings.keystore_path is not None:
        password = os.environ.get(settings.keystore_password_env)
        if password is None:
            raise ConfigError(f"keystore {settings.keystore_path} needs its password in the environment "
                              f"variable {settings.keystore_password_env}")
        path = settings.keystore_path
        if not path.is_file():
            raise ConfigError(f"keystore {path} does not exist; create one with `oracle account new --out {path}` "
                              "or fix keystore_path (ORACLE_KEYSTORE_PATH)")
        try:
            blob = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read keystore {path}: not a JSON keystore file ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or "crypto" not in {str(k).lower() for k in blob}:
            raise ConfigError(f"{path} is not a keystore file (no crypto section)")
        try:
            key = Account.decrypt(blob, password)
        except ValueError:
            raise ConfigError(f"wrong password for keystore {path} (read from ${settings.keystore_password_env})"
                              ) from None
        return Account.from_key(key)
    if settings.private_key is not None:
        try:
            return Account.from_key(settings.private_key.get_secret_value())
        except (ValueError, TypeError):
            raise ConfigError("ORACLE_PRIVATE_KEY is not a private key: expected 0x followed by 64 hex digits"
                              ) from None
    raise ConfigError("no signing key: set keystore_path (with its password in ORACLE_KEYSTORE_PASSWORD) or "
                      "the ORACLE_PRIVATE_KEY environment variable")
