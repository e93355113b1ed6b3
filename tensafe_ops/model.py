"""Strict base model shared by every config section: unknown keys are errors."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Seconds = Annotated[float, Field(gt=0)]
PerMinute = Annotated[float, Field(gt=0)]
