"""One operation per view: check the input, call one service or selector, shape the output."""

import contextlib
import functools
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.shortcuts import get_object_or_404
from django.templatetags.static import static
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import exceptions, status
from rest_framework.metadata import SimpleMetadata
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from behavior.api import auth
from behavior.api.errors import exception_handler
from behavior.api.parsers import JSONParser
from behavior.api.schema import SCHEMA_SETTINGS, documented
from behavior.cache import Counter
from behavior.conf import foresight_settings
from behavior.core.events import MAX_TEXT_LENGTH, customer_id_problem
from behavior.models import ApiKey, Customer
from behavior.selectors import customer_export, scores_for_customer
from behavior.services.customers import IdentityConflict, customer_erase, customer_identify, customer_upsert
from behavior.services.ingest import events_ingest
from behavior.services.products import products_upsert
from behavior.services.scoring import score_reasons_explain

from . import serializers as s

T = TypeVar("T")

Scope = ApiKey.Scope


class JSONNegotiation(DefaultContentNegotiation):
    """DRF's, with a short way for what nearly every client asks: anything, or JSON (the API's one renderer).

    DRF parses the Accept header and the renderers' media types on every call: 0.2 ms of a placements call.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        first = renderers[0]
        if (accept in ("*/*", first.media_type) and format_suffix is None and first.media_type == "application/json"
                and self.settings.URL_FORMAT_OVERRIDE not in request.query_params):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


class ScopedView(APIView):
    """Every API view says which key scope each of its methods needs; HasScope enforces it, and refuses a method
    not declared in `scopes`, whatever handlers the view has.

    Everything DRF would take from a project's REST_FRAMEWORK setting is set here, so that Foresight's
    API behaves the same in any project and leaves the project's own DRF views as they were.
    """

    scopes: dict[str, str] = {}
    authentication_classes = [auth.ApiKeyAuthentication]
    permission_classes = [auth.HasScope]
    throttle_classes = [auth.ApiKeyRateThrottle, auth.ClientAddressRateThrottle, auth.CustomerRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONNegotiation
    metadata_class = SimpleMetadata  # type: ignore[assignment]  # DRF takes the class (its stubs say an instance)
    versioning_class = None  # the version is in the path the project mounts the API under
    schema = AutoSchema()
    # Acts for the customer in the path: a public key then needs their customer token (HasScope). True unless a
    # view says it acts for nobody in particular, so a view that forgets to say is closed, not open.
    customer_bound = True

    @property
    def required_scope(self) -> str | None:
        """None for a method the view does not declare: the caller then gets a 405, whatever the key."""
        method = self.request.method or ""
        return self.scopes.get("GET" if method == "HEAD" else method)

    def _allowed_methods(self) -> list[str]:
        # A 405's Allow header: what the view declares, not every handler it has (APIView's OPTIONS among them).
        declared = {*self.scopes, *(["HEAD"] if "GET" in self.scopes else [])}
        return [method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE") if method in declared]

    def check_throttles(self, request) -> None:
        # A call's counters in one cache round trip (DRF's own asks each throttle in turn).
        if waits := auth.throttle_waits(request, self, self.get_throttles(), count=self.calls_counted):
            self.throttled(request, max((w for w in waits if w is not None), default=None))  # type: ignore[arg-type]  # DRF takes None

    def calls_counted(self, counters: list[Counter]) -> list[int]:
        """Count this call on its throttles; a view may read what it needs in the same cache round trip."""
        return auth.calls_counted(counters)

    def get_exception_handler(self):
        return exception_handler


class SchemaView(SpectacularAPIView):
    """The OpenAPI document of Foresight's API alone, under whatever prefix the project mounted it."""

    authentication_classes: list = []
    permission_classes: list = []
    schema = None  # not an operation of the document
    custom_settings = SCHEMA_SETTINGS


class DocsView(SpectacularSwaggerView):
    """Swagger UI for the API, from the files drf-spectacular-sidecar ships (no CDN)."""

    authentication_classes: list = []
    permission_classes: list = []
    schema = None
    title: str = SCHEMA_SETTINGS["TITLE"]

    @staticmethod
    def _swagger_ui_resource(filename):
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT


class EventsView(ScopedView):
    scopes = {"POST": Scope.INGEST}
    customer_bound = False

    @documented(
        summary="Send one event or a batch of up to 1,000",
        request=s.EventIn(many=True),
        responses={200: s.IngestReportOut, 400: PolymorphicProxySerializer(
            component_name="IngestRefused", serializers=[s.IngestReportOut, s.BatchRefusedOut, s.DetailOut],
            resource_type_field_name=None), 503: s.DetailOut},
        description="Valid events are stored even when others in the batch are rejected. "
        "Events whose event_id is already stored count as duplicates and change nothing. "
        "The status is 400 only when no event of the batch was valid (the report says why) or the batch "
        "itself was empty or too large. 503 (with Retry-After) when the database connection was lost twice: "
        "send the batch again.",
    )
    def post(self, request):
        records = request.data if isinstance(request.data, list) else [request.data]
        if not records:
            raise exceptions.ValidationError({"events": ["send at least one event"]})
        if len(records) > foresight_settings.MAX_BATCH_EVENTS:
            raise exceptions.ValidationError(
                {"events": [f"at most {foresight_settings.MAX_BATCH_EVENTS} events per request; got {len(records)}"]}
            )
        report = _once_more_on_a_lost_connection(functools.partial(events_ingest, records=records))
        none_valid = not report.accepted and not report.duplicates
        body = {"accepted": report.accepted, "duplicates": report.duplicates, "rejected": report.rejected}
        return Response(body, status=status.HTTP_400_BAD_REQUEST if none_valid else status.HTTP_200_OK)


def _once_more_on_a_lost_connection(operation: Callable[[], T]) -> T:
    """Run `operation`, and once more on a fresh connection if the database connection fails: safe for a batch of
    events, which is stored all or nothing and once by event_id. A second failure reaches the exception handler,
    which answers 503 with Retry-After."""
    try:
        return operation()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:  # the project's own transaction is lost with the connection
            raise
        with contextlib.suppress(DatabaseError):
            connection.close()  # the next query opens a new connection
        return operation()


class IdentifyView(ScopedView):
    scopes = {"POST": Scope.INGEST}
    customer_bound = False

    @documented(summary="Link an anonymous visitor to a customer", request=s.IdentifyIn,
                   responses={200: s.IdentifyOut, 409: OpenApiResponse(description="Linked to another customer")})
    def post(self, request):
        data = validated(s.IdentifyIn, request.data)
        try:
            result = customer_identify(anonymous_id=data["anonymous_id"], external_id=data["customer"])
        except IdentityConflict as error:
            raise Conflict(str(error)) from error
        return Response({"customer": result.customer.external_id, "linked_events": result.linked_events})


class CustomerView(ScopedView):
    scopes = {"GET": Scope.READ, "PUT": Scope.ADMIN, "DELETE": Scope.ADMIN}

    @documented(summary="A customer's attributes and consent", responses=s.CustomerOut)
    def get(self, request, external_id):
        return Response(s.CustomerOut(get_object_or_404(Customer, external_id=external_id)).data)

    @documented(summary="Create or update a customer", request=s.CustomerIn, responses={200: s.CustomerOut,
                   201: s.CustomerOut})
    def put(self, request, external_id):
        too_long = len(external_id) > MAX_TEXT_LENGTH and f"a customer id has at most {MAX_TEXT_LENGTH} characters"
        if problem := customer_id_problem(external_id) or too_long:
            raise exceptions.ValidationError({"customer": [problem]})
        data = validated(s.CustomerIn, request.data)
        customer, created = customer_upsert(external_id=external_id, **data)
        return Response(s.CustomerOut(customer).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @documented(summary="Erase a customer and everything derived from them", responses={204: None})
    def delete(self, request, external_id):
        customer_erase(customer=get_object_or_404(Customer, external_id=external_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerExportView(ScopedView):
    scopes = {"GET": Scope.ADMIN}

    @documented(summary="Everything stored about a customer", responses={200: dict})
    def get(self, request, external_id):
        return Response(customer_export(customer=get_object_or_404(Customer, external_id=external_id)))


class CustomerScoresView(ScopedView):
    scopes = {"GET": Scope.READ}

    @documented(summary="A customer's current scores, with the reasons behind them", responses=s.ScoreOut(many=True))
    def get(self, request, external_id):
        scores = scores_for_customer(customer=get_object_or_404(Customer, external_id=external_id))
        for score in scores:
            score.reasons = score_reasons_explain(score=score)
        return Response(s.ScoreOut(scores, many=True).data)


class ProductsView(ScopedView):
    scopes = {"POST": Scope.ADMIN}

    @documented(summary="Create or replace up to 1,000 products", request=s.ProductIn(many=True),
                   responses=s.ProductsOut)
    def post(self, request):
        products = validated(s.ProductsIn, request.data)
        return Response({"upserted": products_upsert(products=products)})


def validated(serializer_class, data):
    """The input's validated data, or a 400 that names each wrong field."""
    if isinstance(data, dict):
        return _checker(serializer_class).run_validation(data)
    serializer = serializer_class(data=data)  # DRF words what is not an object ("Expected a dictionary", ...)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@functools.cache
def _checker(serializer_class):
    """One instance per input class: building a serializer deep-copies its fields, which costs four times
    what checking a redemption with them does, and checking keeps no state on the instance."""
    return serializer_class()
