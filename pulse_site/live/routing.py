from __future__ import annotations

from django.urls import path

from pulse_site.live.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/", EventsConsumer.as_asgi()),
]
