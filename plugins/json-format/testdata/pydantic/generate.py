"""Regenerate the pydantic schemas the json-format tests validate against:

    python3 -m venv /tmp/pyd && /tmp/pyd/bin/pip install 'pydantic>=2,<3'
    /tmp/pyd/bin/python generate.py   # writes order.json, pet.json, tree.json

Committed output came from pydantic 2.14.4.
"""
import json
from enum import Enum
from typing import Literal, Optional, Union, Annotated
from pydantic import BaseModel, Field

class Priority(str, Enum):
    low = "low"
    high = "high"

class Address(BaseModel):
    street: str
    zip_code: str = Field(pattern=r"^\d{5}(-\d{4})?$", description="US ZIP")
    country: str = "US"

class LineItem(BaseModel):
    sku: Annotated[str, Field(min_length=3, max_length=12)]
    qty: int = Field(ge=1, le=100)
    price: float = Field(gt=0)

class Order(BaseModel):
    """A customer order."""
    id: int
    customer_email: Optional[str] = None
    priority: Priority = Priority.low
    shipping: Address
    billing: Optional[Address] = None
    items: list[LineItem] = Field(min_length=1)
    tags: list[str] = []
    note: Optional[str] = Field(default=None, max_length=200)

class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int

class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool

class Pet(BaseModel):
    pet: Union[Cat, Dog] = Field(discriminator="kind")

class TreeNode(BaseModel):
    name: str
    children: list["TreeNode"] = []

for name, m in (("order", Order), ("pet", Pet), ("tree", TreeNode)):
    with open(f"{name}.json", "w") as f:
        json.dump(m.model_json_schema(), f, indent=2)
        f.write("\n")
