"""Handlers whose signatures say what they take, for the tests of how
handlers describe themselves (`inspect --module`, `/v1/functions`,
`/openapi.json`)."""

import dataclasses
import enum
from typing import Literal, Optional, TypedDict


class Point(TypedDict):
    x: int
    y: float


@dataclasses.dataclass
class Options:
    depth: int
    label: str = "plain"


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def add(a: int, b: int = 2) -> int:
    """Adds two numbers.

    The second is 2 unless given."""
    return a + b


async def fetch(url: str, *, retries: Optional[int] = None, mode: Literal["fast", "slow"] = "fast") -> dict:
    return {"url": url, "retries": retries, "mode": mode}


def count(n: int, /, *rest: str, **extra: float):
    yield from range(n)


def shapes(point: Point, options: Options, colour: Colour, rows: list[dict[str, int]],
           pair: tuple[int, str], maybe: "int | None" = None):
    return [point, dataclasses.asdict(options) if not isinstance(options, dict) else options,
            colour, rows, pair, maybe]


def untyped(thing, default=object()):
    return thing


def raw(data: bytes) -> bytes:
    return data
