"""All SQL lives in this package: tables, queries, migrations, transactions."""

from bankflow.persistence._database import Database
from bankflow.persistence._definitions import DefinitionStore
from bankflow.persistence._schema import Base

__all__ = ["Base", "Database", "DefinitionStore"]
