"""Feedback alignment (Lillicrap et al. 2016; docs/rules.md): BP's backward pass through fixed random weights."""

from __future__ import annotations

from gevb.rules.base import register_rule
from gevb.rules.feedback import Feedback


@register_rule("fa", "FA")
class FeedbackAlignment(Feedback):
    """BP whose credit travels back through fixed random ``B_l`` (``Feedback``): nonnegative ON/OFF-structured
    feedback in ``nonneg`` networks, He normal in ``mixed`` ones, drawn once; training never changes it."""
