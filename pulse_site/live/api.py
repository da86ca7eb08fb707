"""The activity history over the API: the team's events, newest first, filtered and paged (the
WebSocket delivers the same events live)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from pulse_site.activity import FAMILIES, ActivityFilter, activity_history, activity_text
from pulse_site.api import TeamAPIView, error_responses, query_choice, query_int
from pulse_site.ids import MAX_PAGE
from pulse_site.live.models import Event
from pulse_site.live.selectors import Audience

EVENT_ID = "An event id (a whole number)."


class EventListQuery(serializers.Serializer):
    family = query_choice(list(FAMILIES), help_text="Only events of this family (the part of `kind` before the dot).")
    subject = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                    help_text="Only the events of this id: a job's (JB_…), a schedule's (SP_…).")
    all = serializers.BooleanField(required=False, default=False,
                                   help_text="With the jobs' progress and log lines (left out by default).")
    cursor = serializers.IntegerField(required=False, min_value=1, help_text="The next_cursor of the previous page.",
                                      error_messages={"invalid": EVENT_ID, "min_value": EVENT_ID,
                                                      "max_string_length": EVENT_ID})
    limit = query_int(low=1, high=MAX_PAGE, default=50)


class EventOut(serializers.Serializer):
    id = serializers.IntegerField(help_text="The sequence id (the WebSocket's, for /ws/?since=).")
    kind = serializers.CharField()
    subject = serializers.CharField()
    at = serializers.DateTimeField()
    payload = serializers.JSONField()
    text = serializers.CharField(help_text="What happened, in the dashboard's words.")


class EventPageOut(serializers.Serializer):
    results = EventOut(many=True)
    next_cursor = serializers.IntegerField(allow_null=True, help_text=(
        "Pass as ?cursor= for older events; null at the end. A page filtered to the jobs' or the runs' "
        "events looks through 100,000 events at most, so it may hold fewer than `limit` while this is set."))


def event_out(event: Event) -> dict[str, object]:
    return {"id": event.id, "kind": event.kind, "subject": event.subject, "at": event.created_at,
            "payload": event.payload, "text": activity_text(event.kind, event.payload)}


class EventListView(TeamAPIView):
    queries = {"GET": EventListQuery}

    @extend_schema(operation_id="events_list", summary="The team's events, newest first (the activity history)",
                   responses={200: EventPageOut, **error_responses(400, 401)})
    def get(self, request: Request) -> Response:
        query = self.query
        filters = ActivityFilter(family=query.get("family", ""), subject=query.get("subject", ""),
                                 everything=query["all"])
        audience = Audience.of(membership=self.membership, token=self.token)
        events, cursor = activity_history(team=self.team, audience=audience, filters=filters,
                                          before=query.get("cursor"), limit=query["limit"])
        return Response(EventPageOut({"results": [event_out(e) for e in events], "next_cursor": cursor}).data)
