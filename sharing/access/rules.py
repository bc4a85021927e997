"""The access rule for studies, written once."""

from __future__ import annotations

from django.db.models import QuerySet

from sharing.models import Share, Study, User


def own_studies(user: User) -> QuerySet[Study]:
    """Studies of the Patient records linked to ``user``, less those held for records staff (their
    identity clashes with another patient's: nobody's account sees them until staff decide).

    These are also the only studies a user may share, even records staff, who deliver a release in
    the patient's name."""
    return Study.objects.filter(patient__user=user, number_of_instances__gt=0, held_reason="")


def studies_visible_to(user: User) -> QuerySet[Study]:
    """Patients see their own studies; records staff and administrators any study."""
    if not user.is_records_staff:
        return own_studies(user)
    return Study.objects.filter(number_of_instances__gt=0)


def shared_studies(share: Share) -> QuerySet[Study]:
    """What a share's holder sees: the studies the share names, once they hold images."""
    return Study.objects.filter(shares=share, number_of_instances__gt=0)
