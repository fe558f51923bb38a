"""Every model module, imported so `Base.metadata` is complete (Alembic, tests)."""

from lti_tool.db import Base
from lti_tool.identity import models as identity_models
from lti_tool.lti import models as lti_models

__all__ = ["Base", "identity_models", "lti_models"]
