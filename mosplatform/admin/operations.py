"""What the dashboard's buttons do, as request-free functions.

Status changes, duplication, collaborators, exclusions and the participant links of
the crowd-platform presets. The views check permissions and call these.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import (
    AdminUser,
    Condition,
    Event,
    Item,
    ObjectiveScore,
    Participant,
    ParticipantStatus,
    Question,
    Stimulus,
    Test,
    TestCollaborator,
    TestStatus,
)
from ..services.assignment import change_votes
from ..services.importer import new_public_id

# action -> (statuses it may start from, status it leads to)
STATUS_ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "open": ((TestStatus.draft.value, TestStatus.paused.value, TestStatus.closed.value),
             TestStatus.open.value),
    "pause": ((TestStatus.open.value,), TestStatus.paused.value),
    "close": ((TestStatus.draft.value, TestStatus.open.value, TestStatus.paused.value),
              TestStatus.closed.value),
}
MAX_REASON_LENGTH = 500
# Kind of the audit event written when an admin excludes or re-includes a participant.
EXCLUSION_EVENT = "admin_exclusion"


class OperationError(ValueError):
    """An action that cannot be done in the current state, with the reason."""


def available_actions(test: Test) -> list[str]:
    """Status actions that apply to ``test`` now, in button order."""
    return [a for a, (sources, _) in STATUS_ACTIONS.items() if test.status in sources]


def change_status(test: Test, action: str) -> str:
    """Open, pause or close a test.

    Parameters
    ----------
    test : Test
    action : {"open", "pause", "close"}

    Returns
    -------
    str
        The new status.

    Raises
    ------
    OperationError
        For an unknown action or one that does not apply to the current status.
    """
    if action not in STATUS_ACTIONS:
        raise OperationError(f"unknown action {action!r}; expected one of {list(STATUS_ACTIONS)}")
    sources, target = STATUS_ACTIONS[action]
    if test.status not in sources:
        raise OperationError(f"cannot {action} a test that is {test.status}")
    test.status = target
    db.session.commit()
    return target


def duplicate_test(test: Test, owner: AdminUser) -> Test:
    """Copy a test's definition, questions, items, conditions and stimuli into a new draft.

    Stimuli are shared, not re-prepared: the copy points at the same content-hashed
    files, which never change once written. Participants, ratings and collaborators
    are not copied.

    Parameters
    ----------
    test : Test
        The test to copy.
    owner : AdminUser
        Owner of the copy.

    Returns
    -------
    Test
        The new test, committed, with status ``draft``.
    """
    name = f"{test.name} (copy)"[:200]
    definition = copy.deepcopy(test.definition)
    definition["name"] = name
    settings = copy.deepcopy(test.settings or {})
    settings["duplicated_from"] = test.public_id
    new = Test(public_id=new_public_id(), name=name, kind=test.kind,
               status=TestStatus.draft.value, owner=owner, definition=definition,
               settings=settings, seed=test.seed)
    db.session.add(new)
    for q in test.questions:
        db.session.add(Question(test=new, key=q.key, position=q.position,
                                label=copy.deepcopy(q.label), scale=copy.deepcopy(q.scale)))
    conditions: dict[int, Condition] = {}
    for c in test.conditions:
        conditions[c.id] = Condition(test=new, key=c.key, role=c.role, position=c.position,
                                     description=c.description)
        db.session.add(conditions[c.id])
    for it in test.items:
        item = Item(test=new, key=it.key, position=it.position, track=it.track,
                    source=it.source, kind=it.kind, start_s=it.start_s,
                    duration_s=it.duration_s, expected=copy.deepcopy(it.expected))
        db.session.add(item)
        for s in it.stimuli:
            stim = Stimulus(item=item, condition=conditions.get(s.condition_id)
                            if s.condition_id is not None else None,
                            content_hash=s.content_hash, path=s.path,
                            sample_rate=s.sample_rate, channels=s.channels,
                            num_frames=s.num_frames, duration_s=s.duration_s,
                            loudness_lufs=s.loudness_lufs, peak_dbfs=s.peak_dbfs,
                            source_path=s.source_path)
            db.session.add(stim)
            for o in s.objective_scores:
                db.session.add(ObjectiveScore(stimulus=stim, metric=o.metric, value=o.value,
                                              details=copy.deepcopy(o.details)))
    db.session.commit()
    return new


def add_collaborator(test: Test, username: str) -> AdminUser:
    """Let the admin named ``username`` view ``test``.

    Raises
    ------
    OperationError
        If there is no such admin, or they own the test or already collaborate.
    """
    username = (username or "").strip()
    user = db.session.execute(
        select(AdminUser).where(AdminUser.username == username)).scalar_one_or_none()
    if user is None:
        raise OperationError(f"no admin named {username!r}")
    if user.id == test.owner_id:
        raise OperationError(f"{username} owns this test")
    if any(c.user_id == user.id for c in test.collaborators):
        raise OperationError(f"{username} is already a collaborator")
    db.session.add(TestCollaborator(test=test, user=user))
    db.session.commit()
    return user


def remove_collaborator(test: Test, user_id: int) -> AdminUser:
    """Withdraw a collaborator's access.

    Raises
    ------
    OperationError
        If that admin is not a collaborator of ``test``.
    """
    link = next((c for c in test.collaborators if c.user_id == user_id), None)
    if link is None:
        raise OperationError("that admin is not a collaborator of this test")
    user = link.user
    test.collaborators.remove(link)
    db.session.commit()
    return user


def set_exclusion(participant: Participant, excluded: bool, reason: str,
                  by: AdminUser) -> None:
    """Exclude a participant from the data, or include them again, with the reason.

    Parameters
    ----------
    participant : Participant
    excluded : bool
        True to exclude, False to include again.
    reason : str
        Why; required. Stored in ``exclusion_reason`` when excluding; either way an
        audit event of kind ``admin_exclusion`` records who did what and why.
    by : AdminUser
        The admin acting.

    Raises
    ------
    OperationError
        Without a reason, or with one over 500 characters.
    """
    reason = (reason or "").strip()
    if not reason:
        raise OperationError("give a reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise OperationError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    if bool(participant.excluded) != excluded:
        # Excluded participants' votes do not count towards balance.
        change_votes(participant, -1 if excluded else +1)
    if excluded:
        participant.excluded = True
        participant.exclusion_reason = reason
        participant.status = ParticipantStatus.excluded.value
    else:
        participant.excluded = False
        participant.exclusion_reason = None
        participant.status = (ParticipantStatus.finished.value if participant.finished_at
                              else ParticipantStatus.started.value)
    db.session.add(Event(participant_id=participant.id, trial_id=None, kind=EXCLUSION_EVENT,
                         payload={"excluded": excluded, "reason": reason, "by": by.username}))
    db.session.commit()


@dataclass(frozen=True)
class CrowdLink:
    """A participant link for one recruitment channel, with how to finish there."""

    preset: str
    title: str
    url: str
    help: str
    completion: str | None = None
    active: bool = False  # the platform named in the definition's crowd.platform


PROLIFIC_PARAMS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}" \
    "&SESSION_ID={{%SESSION_ID%}}"
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="


def crowd_links(test: Test, base_url: str) -> list[CrowdLink]:
    """Participant links: plain, Prolific, and a generic platform with a return URL.

    Parameters
    ----------
    test : Test
    base_url : str
        Absolute URL of the test's arrival page (``.../t/<public_id>``).

    Returns
    -------
    list of CrowdLink
        Prolific substitutes ``{{%PROLIFIC_PID%}}`` and friends itself, so they are
        left unencoded. The arrival page reads ``PROLIFIC_PID`` (or ``participant``)
        as the external id, so a returning worker resumes their session.
    """
    crowd: dict[str, Any] = (test.definition or {}).get("crowd") or {}
    code = crowd.get("completion_code")
    prolific_done = crowd.get("completion_url") or (f"{PROLIFIC_COMPLETE}{code}" if code else None)
    return_url = crowd.get("return_url")
    platform = crowd.get("platform") or "none"
    links = [
        CrowdLink("plain", "Plain link", base_url,
                  "Anyone with this link takes part; each browser gets its own session."),
        CrowdLink("prolific", "Prolific", f"{base_url}?{PROLIFIC_PARAMS}",
                  "Paste as the study URL with 'URL parameters' on. At the end participants "
                  "are sent to the completion URL.",
                  completion=prolific_done or "set crowd.completion_code in the definition"),
        CrowdLink("generic", "Other platform", f"{base_url}?participant=WORKER_ID",
                  "Replace WORKER_ID with your platform's placeholder for the worker id. "
                  "At the end participants go to the return URL ({external_id} and {code} "
                  "are filled in).",
                  completion=return_url or "set crowd.return_url in the definition"),
    ]
    active = {"none": "plain"}.get(platform, platform)
    return [CrowdLink(**{**link.__dict__, "active": link.preset == active}) for link in links]
