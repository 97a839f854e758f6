from django import template
from django.utils.safestring import SafeString

from behavior.dashboard import dashboard

register = template.Library()


@register.simple_tag(takes_context=True)
def foresight_dashboard(context) -> SafeString:
    """The dashboard's sections the page's user may see (behavior.dashboard)."""
    return dashboard(context["request"])
