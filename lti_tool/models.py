"""Every model module, imported so `Base.metadata` is complete (Alembic, tests)."""

from lti_tool.db import Base
from lti_tool.grading import models as grading_models
from lti_tool.identity import models as identity_models
from lti_tool.linking import models as linking_models
from lti_tool.lti import models as lti_models
from lti_tool.modules import models as modules_models
from lti_tool.quiz import models as quiz_models

__all__ = [
    "Base",
    "grading_models",
    "identity_models",
    "linking_models",
    "lti_models",
    "modules_models",
    "quiz_models",
]
