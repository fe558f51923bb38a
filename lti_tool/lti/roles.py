"""LTI role vocabulary mapped to the roles the tool acts on."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    LEARNER = "learner"
    INSTRUCTOR = "instructor"
    ADMINISTRATOR = "administrator"
    # Recognised now, given no rights yet.
    MENTOR = "mentor"
    TEACHING_ASSISTANT = "teaching_assistant"
    CONTENT_DEVELOPER = "content_developer"


_LIS = "http://purl.imsglobal.org/vocab/lis/v2/"

# Context (membership) roles, full URI or the short names LTI 1.3 and NRPS allow.
_CONTEXT_ROLES = {
    "Learner": Role.LEARNER,
    "Instructor": Role.INSTRUCTOR,
    "Administrator": Role.ADMINISTRATOR,
    "Mentor": Role.MENTOR,
    "ContentDeveloper": Role.CONTENT_DEVELOPER,
    "TeachingAssistant": Role.TEACHING_ASSISTANT,
}
_SUB_ROLES = {
    "Instructor#TeachingAssistant": Role.TEACHING_ASSISTANT,
    "Administrator#Administrator": Role.ADMINISTRATOR,
}
# System and institution roles that matter here: an LMS administrator manages the tool.
_ADMIN_URIS = {
    _LIS + "system/person#Administrator",
    _LIS + "system/person#SysAdmin",
    _LIS + "institution/person#Administrator",
}


def _map_one(value: str) -> Role | None:
    value = value.strip()
    if value in _ADMIN_URIS:
        return Role.ADMINISTRATOR
    if value.startswith(_LIS + "membership#"):
        return _CONTEXT_ROLES.get(value.removeprefix(_LIS + "membership#"))
    if value.startswith(_LIS + "membership/"):
        return _SUB_ROLES.get(value.removeprefix(_LIS + "membership/"))
    # Short names carry no scheme; anything else with a scheme is some vocabulary we ignore.
    if "://" in value or ":" in value:
        return None
    return _CONTEXT_ROLES.get(value)


def map_roles(claim: Iterable[str]) -> frozenset[Role]:
    """The tool roles for an LTI roles claim; unknown values are ignored."""
    roles = {
        role for value in claim if isinstance(value, str) for role in [_map_one(value)] if role
    }
    return frozenset(roles)


def has_staff_rights(roles: Iterable[Role]) -> bool:
    """Instructors and administrators manage the course; everyone else gets a learner's view."""
    return any(role in (Role.INSTRUCTOR, Role.ADMINISTRATOR) for role in roles)


def encode_roles(roles: Iterable[Role]) -> str:
    return " ".join(sorted(role.value for role in roles))


def decode_roles(text: str) -> frozenset[Role]:
    known = {role.value for role in Role}
    return frozenset(Role(value) for value in text.split() if value in known)
