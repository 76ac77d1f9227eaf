"""Deeper fully connected networks, four hidden layers of 256, vectorized and conventional."""

from gevb.models import register_architecture
from gevb.models.specs import Linear

SMALL = ((16, 16, 12, 12), (16, 16, 12, 12))  # the widths tests use, for one- and multi-channel inputs


@register_architecture("deep-fc-vec", "deep-fc", True, "Deep-FC-Vec", SMALL)
def deep_fc_vec(channels):
    return Linear(256), Linear(256), Linear(256), Linear(256)


@register_architecture("deep-fc", "deep-fc", False, "Deep-FC", SMALL)
def deep_fc(channels):
    return Linear(256), Linear(256), Linear(256), Linear(256)
