"""What a rule does for the customers it reaches: one registered action per kind, each one module of the app
whose rules take it (campaigns: ads, price offers, messages; support: proactive tickets).

The engine picks whom a rule reaches and holds out (behavior.core.outreach) and claims their contact budget
(behavior.services.outreach.outreach_reach); then the rule's action records what it does for them. An
action registers itself with `@action_register`; its app lists its kinds with `actions(app_label)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import numpy as np


class Action:
    """Subclasses set `kind`, `label` and `rules` (the app label of the rules that take it), and `record`."""

    kind: str
    label: str
    rules: str

    def record(self, rule: Any, control: np.ndarray, reached: np.ndarray, *, at: datetime, run: Any,
               **context: Any) -> None:
        """Record the control group (held out, measured) and do the action for the customers reached, in the
        rule's transaction; `context` carries what the rule's evaluation loaded for it (campaigns' events)."""
        raise NotImplementedError


_REGISTERED: dict[str, Action] = {}
A = TypeVar("A", bound=type[Action])


def action_register(cls: A) -> A:
    """Register an action class under its kind (a class decorator)."""
    if cls.kind in _REGISTERED:
        raise ValueError(f"two actions are called {cls.kind!r}")
    _REGISTERED[cls.kind] = cls()
    return cls


def actions(rules: str) -> dict[str, Action]:
    """The registered actions that the rules of app `rules` take, by kind, in the order registered."""
    return {kind: action for kind, action in _REGISTERED.items() if action.rules == rules}
