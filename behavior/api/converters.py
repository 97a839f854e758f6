"""The API's path parameters: a customer id or a coupon code is any text but a slash or a NUL.

A NUL reaches no lookup (no text column can hold one): such a path matches no route, a 404.
"""

from django.urls import register_converter


class PathText:
    regex = "[^/\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PathText, "text")
