"""The contact-pressure budget: campaigns and support claim outreach slots here, never from each other.

Claims are serialized: on PostgreSQL by a transaction-level advisory lock, on SQLite by its
single writer (transactions there begin IMMEDIATE). Between reading what customers have used
and recording the new contacts no other claim can run, so two workers cannot both take a
customer's last slot.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction

from behavior.models import Contact, ContactPolicy
from behavior.selectors import contacts_used

_CLAIM_LOCK = 0x46_53_43_54  # any fixed number, the same for every claimant ("FSCT")


def contacts_claim(*, customer_ids: np.ndarray, source: str, at: datetime) -> np.ndarray:
    """Record one contact for each customer (in the order given) that has budget left; return their ids.

    Runs in the caller's transaction when there is one, so a claim and the outreach it pays for
    commit or roll back together.
    """
    ids = pd.unique(np.asarray(customer_ids, dtype=np.int64))
    if len(ids) == 0:
        return ids
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK])
        policy = ContactPolicy.current()
        used = contacts_used(policy, at).reindex(ids, fill_value=0).to_numpy()
        granted = ids[used < policy.max_contacts]
        Contact.objects.bulk_create(
            [Contact(customer_id=int(c), source=source, contacted_at=at) for c in granted], batch_size=5_000
        )
    return granted
