"""Settings of the console (environment variables; shared ones in ServiceSettings)."""

from gridloop_runtime.settings import ServiceSettings
from pydantic import Field, SecretStr


class ConsoleSettings(ServiceSettings):
    service_name: str = Field("console", alias="SERVICE_NAME")
    http_port: int = Field(8006, alias="HTTP_PORT")
    # Where the five services answer; the console forwards the caller's token to them.
    intake_url: str = Field("http://127.0.0.1:8001", alias="CONSOLE_INTAKE_URL")
    dispatch_url: str = Field("http://127.0.0.1:8002", alias="CONSOLE_DISPATCH_URL")
    handling_url: str = Field("http://127.0.0.1:8003", alias="CONSOLE_HANDLING_URL")
    verify_url: str = Field("http://127.0.0.1:8004", alias="CONSOLE_VERIFY_URL")
    scoring_url: str = Field("http://127.0.0.1:8005", alias="CONSOLE_SCORING_URL")
    # Seconds a forwarded request may take.
    upstream_timeout_s: float = Field(15.0, gt=0, alias="CONSOLE_UPSTREAM_TIMEOUT_S")
    # An optional map tile URL template drawn under the cells, e.g.
    # https://tiles.example.org/{z}/{x}/{y}.png; empty: the cells alone (works offline).
    tile_url: str = Field("", alias="CONSOLE_TILE_URL")
    tile_attribution: str = Field("", alias="CONSOLE_TILE_ATTRIBUTION")
    # Lifetime of the tokens the console issues in AUTH_MODE=dev.
    token_ttl_s: int = Field(12 * 3600, ge=60, alias="CONSOLE_TOKEN_TTL_S")
    # A comment line on every open event stream this often, so proxies keep it open.
    sse_keepalive_s: float = Field(15.0, gt=0, alias="CONSOLE_SSE_KEEPALIVE_S")

    # The public page's reports go through Open311 under this key (one of the city's
    # sources.yaml open311_api_keys, of the `web` source).
    open311_api_key: SecretStr = Field(
        SecretStr("demo-open311-key"), alias="CONSOLE_OPEN311_API_KEY"
    )

    def upstreams(self) -> dict[str, str]:
        return {
            "intake": self.intake_url,
            "dispatch": self.dispatch_url,
            "handling": self.handling_url,
            "verify": self.verify_url,
            "scoring": self.scoring_url,
        }
