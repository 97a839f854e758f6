"""What a campaign does for the customers it treats: one module per action, registered in behavior.actions.

Adding an action is a module with an `@action_register` `Action` subclass and its settings model, named in
the last line of campaigns/models.py; the campaign's kind choices, the admin, evaluation, placements, the
preview and the dry run all read the registry.
"""

from __future__ import annotations

import functools
from typing import cast

from behavior.actions import actions
from campaigns.actions.base import Action


@functools.cache
def registry() -> dict[str, Action]:
    import campaigns.models  # noqa: F401  (its last line imports each action's module, registering it)

    return cast(dict[str, Action], actions("campaigns"))


def action_of(kind: str) -> Action:
    return registry()[kind]


def kind_choices() -> list[tuple[str, str]]:
    """The campaign kinds: one per registered action."""
    return [(kind, action.label) for kind, action in registry().items()]


def shown_kinds() -> list[str]:
    """The kinds whose live assignments the storefront's placements call shows."""
    return [kind for kind, action in registry().items() if action.shown_in_placements]
