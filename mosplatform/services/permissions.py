"""Who may see and change a test: the owner edits, collaborators view, superusers do all.

Plain functions of an :class:`~mosplatform.models.AdminUser` and a
:class:`~mosplatform.models.Test`; the admin views turn a refused view into 404 (the
test's existence is not revealed) and a refused edit into 403.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select

from ..models import AdminUser, Test, TestCollaborator


def _is_admin(user: Any) -> bool:
    # Flask-Login's AnonymousUserMixin and None both mean "nobody".
    return isinstance(user, AdminUser) and user.id is not None


def is_collaborator(user: AdminUser, test: Test) -> bool:
    """Whether ``user`` was added to ``test`` as a collaborator."""
    return any(c.user_id == user.id for c in test.collaborators)


def can_view(user: Any, test: Test) -> bool:
    """Whether ``user`` may see ``test``, its progress, participants and data.

    Parameters
    ----------
    user : AdminUser or anything else
        Anything that is not a stored admin (anonymous, a participant session) may not.
    test : Test

    Returns
    -------
    bool
        True for the owner, a collaborator or a superuser.
    """
    if not _is_admin(user):
        return False
    return bool(user.is_superuser or test.owner_id == user.id or is_collaborator(user, test))


def can_edit(user: Any, test: Test) -> bool:
    """Whether ``user`` may change ``test`` (status, collaborators, exclusions, duplicate).

    Parameters
    ----------
    user : AdminUser or anything else
    test : Test

    Returns
    -------
    bool
        True for the owner and for superusers; collaborators only view.
    """
    if not _is_admin(user):
        return False
    return bool(user.is_superuser or test.owner_id == user.id)


def visible_tests_query(user: AdminUser) -> Select[tuple[Test]]:
    """Select the tests ``user`` may view, newest first (every test for a superuser)."""
    stmt = select(Test).order_by(Test.created_at.desc(), Test.id.desc())
    if user.is_superuser:
        return stmt
    shared = select(TestCollaborator.test_id).where(TestCollaborator.user_id == user.id)
    return stmt.where(or_(Test.owner_id == user.id, Test.id.in_(shared)))
