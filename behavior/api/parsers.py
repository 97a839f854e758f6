import orjson
from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """orjson parses 1,000-event batches several times faster than the standard library."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read())
        except orjson.JSONDecodeError as error:
            raise exceptions.ParseError(f"The body is not valid JSON: {error}") from error
