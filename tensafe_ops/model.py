"""Strict base model shared by every config section: unknown keys are errors."""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Seconds = Annotated[float, Field(gt=0)]
PerMinute = Annotated[float, Field(gt=0)]


def _http_url(text: str) -> str:
    """ValueError unless `text` is an absolute http(s) URL. The message never repeats the
    value: a webhook URL's path is its credential."""
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ValueError("must be an absolute http:// or https:// URL")
    return text


def _secret_http_url(secret: SecretStr) -> SecretStr:
    _http_url(secret.get_secret_value())
    return secret


HttpUrlText = Annotated[str, AfterValidator(_http_url)]
SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]
